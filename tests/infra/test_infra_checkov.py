"""checkov on infra/terraform and on every built infra/k8s overlay. Every skip carries its reason:
inline `#checkov:skip=CKV_...:reason` in Terraform, `checkov.io/skipN: CKV_...=reason` annotations in
Kubernetes manifests; this module fails on a skip without one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from infra_tools import K8S, ROOT, TERRAFORM, kustomize, overlays, run, tf_files, tool

# --skip-download: no call to the vendor's platform (guidelines, policies); with unshare (infra_tools.run)
# there is no network at all.
CHECKOV_FLAGS = ["--skip-download", "--quiet", "--compact", "--output", "json"]
TF_SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(:(.*))?")
K8S_SKIP = re.compile(r"checkov\.io/skip\d+:\s*(CKV2?_[A-Z0-9_]+)(=(.*))?")


def _failures(report: Any) -> list[str]:
    reports = report if isinstance(report, list) else [report]
    failed = []
    for rep in reports:
        if not isinstance(rep, dict):
            continue
        for check in rep.get("results", {}).get("failed_checks", []):
            failed.append(f"{check['check_id']} {check['resource']} ({check['file_path']}:{check['file_line_range']})")
    return failed


def _checkov(*args: str) -> Any:
    done = run([tool("checkov"), *args, *CHECKOV_FLAGS], timeout=170)
    assert done.stdout.strip(), f"checkov printed nothing (rc {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    return report, done


def test_checkov_terraform() -> None:
    report, done = _checkov("-d", str(TERRAFORM), "--framework", "terraform")
    failed = _failures(report)
    assert not failed, "checkov (terraform) failed:\n" + "\n".join(failed)
    assert done.returncode == 0, done.stderr[-3000:]
    passed = report["summary"]["passed"] if isinstance(report, dict) else sum(r["summary"]["passed"] for r in report)
    assert passed > 100  # the scan really ran over the modules


def test_checkov_kubernetes_on_built_overlays(tmp_path: Path) -> None:
    for directory in overlays():
        name = "_".join(directory.relative_to(K8S).parts)
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump_all(kustomize(directory), sort_keys=False), encoding="utf-8"
        )
    report, done = _checkov("-d", str(tmp_path), "--framework", "kubernetes")
    failed = _failures(report)
    assert not failed, "checkov (kubernetes) failed:\n" + "\n".join(failed)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_checkov_skip_says_why() -> None:
    unexplained = []
    skips = 0
    for path in tf_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if (match := TF_SKIP.search(line)) is not None:
                skips += 1
                if len((match.group(3) or "").strip()) < 20:
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}")
    for path in sorted(K8S.rglob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if (match := K8S_SKIP.search(line)) is not None:
                skips += 1
                if len((match.group(3) or "").strip()) < 20:
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}")
    assert skips > 0
    assert not unexplained, "checkov skips without a reason:\n" + "\n".join(unexplained)
