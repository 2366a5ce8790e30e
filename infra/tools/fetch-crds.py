#!/usr/bin/env python3
"""Download the CRDs the strict manifest validation (tests/contract/test_manifests.py) reads, at the
versions pinned in infra/ansible/group_vars/all/versions.yml, for machines without the shared copy
(the pull-request workflow on GitHub's runners).

    python infra/tools/fetch-crds.py DIR      # prints ECO2_KNATIVE_CRDS=DIR (append it to $GITHUB_ENV)

ECO2_CRD_MIRROR replaces https://github.com in the release URLs (a local mirror; tests use one).
Files: the Knative Serving and Eventing CRD releases and eventing-rabbitmq's broker release (which
carries the RabbitmqBrokerConfig CRD); the validator reads only the CustomResourceDefinitions in them.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.request
from pathlib import Path

import yaml

VERSIONS = Path(__file__).resolve().parents[1] / "ansible" / "group_vars" / "all" / "versions.yml"
FILES = {
    "knative-serving.yaml": "knative_serving_crds",
    "knative-eventing.yaml": "knative_eventing_crds",
    "eventing-rabbitmq.yaml": "eventing_rabbitmq_broker",
}


def urls() -> dict[str, str]:
    versions = yaml.safe_load(VERSIONS.read_text(encoding="utf-8"))

    def resolve(template: str) -> str:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(versions[m.group(1)]), " ".join(template.split()))

    mirror = os.environ.get("ECO2_CRD_MIRROR", "").rstrip("/")
    out = {}
    for name, key in FILES.items():
        url = resolve(versions["upstream_manifests"][key]).replace(" ", "")
        out[name] = url.replace("https://github.com", mirror, 1) if mirror else url
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = Path(argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for name, url in urls().items():
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        if b"kind: CustomResourceDefinition" not in body:
            print(f"fetch-crds: {url} holds no CustomResourceDefinition", file=sys.stderr)
            return 1
        (target / name).write_bytes(body)
        print(f"fetch-crds: {url} -> {target / name}", file=sys.stderr)
    print(f"ECO2_KNATIVE_CRDS={target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
