#!/usr/bin/env python3
"""Write the Terraform outputs the ALB Ingress needs into infra/k8s/overlays/<env>/ingress.

    terraform -chdir=infra/terraform/envs/dev output -json > /tmp/dev.json
    python3 infra/tools/set-overlay-values.py dev /tmp/dev.json
    git diff infra/k8s/overlays/dev/ingress   # review, commit: ArgoCD's ingress app picks it up

Sets the load balancer name, the ACM certificate ARN, the ALB security group and the API domain
(the VirtualServices' host). Only those four values change; the rest of the file stays as written.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

K8S = Path(__file__).resolve().parents[1] / "k8s"
ANNOTATIONS = {
    "load-balancer-name": "alb_name",
    "certificate-arn": "api_certificate_arn",
    "security-groups": "alb_security_group_id",
}


def outputs(path: Path) -> dict[str, object]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()}


def rewrite(text: str, values: dict[str, object]) -> str:
    for annotation, output in ANNOTATIONS.items():
        pattern = rf"(path: /metadata/annotations/alb\.ingress\.kubernetes\.io~1{re.escape(annotation)}\n\s+value: )\S+"
        text, n = re.subn(pattern, lambda m, v=str(values[output]): m.group(1) + v, text)
        if n != 1:
            raise SystemExit(f"set-overlay-values: no patch for the {annotation} annotation")
    text, n = re.subn(r"(path: /spec/hosts/0\n\s+value: )\S+", lambda m: m.group(1) + str(values["api_domain"]), text)
    if n != 1:
        raise SystemExit("set-overlay-values: no patch for the VirtualServices' host")
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    env, source = argv[1], Path(argv[2])
    target = K8S / "overlays" / env / "ingress" / "kustomization.yaml"
    target.write_text(rewrite(target.read_text(encoding="utf-8"), outputs(source)), encoding="utf-8")
    print(f"updated {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
