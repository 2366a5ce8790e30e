"""The images bucket's lifecycle rule expires exactly what the images function leaves unconfirmed:
the prefix its presigned PUTs write to (functions/images/service.py), and nothing it publishes."""

from __future__ import annotations

from typing import Any

from infra_tools import TERRAFORM, hcl, resources

from functions.common.uploads import KEY_RE
from functions.images import service


def _rules() -> dict[str, dict[str, Any]]:
    [lifecycle] = [
        body
        for rtype, _, body in resources(TERRAFORM / "modules" / "images" / "main.tf")
        if rtype == "aws_s3_bucket_lifecycle_configuration"
    ]
    return {rule["id"]: rule for rule in lifecycle["rule"]}


def test_unconfirmed_uploads_expire_under_the_prefix_the_function_writes_to() -> None:
    rule = _rules()["expire-unconfirmed-uploads"]
    assert rule["status"] == "Enabled"
    [expiry_filter] = rule["filter"]
    assert expiry_filter["prefix"] == service.PENDING_OBJECTS == "pending/"
    assert rule["expiration"][0]["days"] == "${var.pending_upload_days}"
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == 1  # refused and replaced versions too
    [variables] = [
        v for v in hcl(TERRAFORM / "modules" / "images" / "variables.tf")["variable"] if "pending_upload_days" in v
    ]
    assert variables["pending_upload_days"]["default"] == 1


def test_published_keys_are_never_under_the_pending_prefix() -> None:
    key = "scan/0123456789abcdef0123456789abcdef.png"
    assert KEY_RE.fullmatch(key) and not key.startswith(service.PENDING_OBJECTS)
    assert service.pending_object(key) == "pending/" + key
    assert KEY_RE.fullmatch(service.pending_object(key)) is None  # a pending object is not an image key


def test_the_cdn_never_serves_an_unconfirmed_upload() -> None:
    docs: dict[str, Any] = {}
    for block in hcl(TERRAFORM / "modules" / "images" / "main.tf")["data"]:
        docs.update(block.get("aws_iam_policy_document", {}))
    statements = {s["sid"]: s for s in docs["images"]["statement"]}
    deny = statements["NoCdnForUnconfirmedUploads"]
    assert deny["effect"] == "Deny" and deny["actions"] == ["s3:GetObject"]
    assert deny["resources"] == [f"${{aws_s3_bucket.images.arn}}/{service.PENDING_OBJECTS}*"]
    assert deny["principals"][0]["identifiers"] == ["cloudfront.amazonaws.com"]
