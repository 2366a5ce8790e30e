"""A real S3-compatible server on 127.0.0.1 for tests: moto's S3, in its own process, over HTTP.

    from tests.support.s3_server import S3Server, s3_server_fixture  # registers the `s3_server` fixture

    def test_x(s3_server: S3Server) -> None:        # session-scoped
        client = function_client("images", **s3_server.env())
        s3_server.client().head_object(Bucket=s3_server.bucket, Key=...)

moto (5.x) accepts presigned URLs without checking their signature: its IAM check reads only the
`Authorization` header, so a presigned PUT with another Content-Type than the one signed goes
through. Real S3 refuses it, and the images function relies on that. So the server process wraps
moto's WSGI app in `PresignVerifier`, which checks every query-string-signed (presigned) request
the way S3 does — AWS Signature V4 recomputed from the method, path, query, the signed headers and
the secret key; expiry — and answers S3's own 403 XML errors. Header-signed SDK calls pass through
to moto unchanged.

Run by hand: `python -m tests.support.s3_server` prints `READY <port>` and serves until killed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

import pytest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ROOT = Path(__file__).resolve().parents[2]
ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "ap-northeast-2"
BUCKET = "eco2-test-images"
START_TIMEOUT = 20.0  # seconds for the process to listen and answer
STOP_TIMEOUT = 5.0


# -- the server side ---------------------------------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri_encode(text: str, safe: str = "-_.~") -> str:
    return quote(text, safe=safe)


def _header_value(environ: WSGIEnvironment, name: str) -> str | None:
    if name == "content-type":
        value = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        value = environ.get("CONTENT_LENGTH")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else " ".join(str(value).split())


def _s3_error(start_response: StartResponse, status: str, code: str, message: str) -> Iterable[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class PresignVerifier:
    """WSGI middleware: S3's check of presigned (query-string SigV4) requests, in front of moto."""

    def __init__(self, app: WSGIApplication, credentials: dict[str, str]) -> None:
        self.app = app
        self.credentials = credentials

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        params = dict(query)
        if "X-Amz-Signature" not in params:
            return self.app(environ, start_response)
        problem = self.problem(environ, query, params)
        if problem is not None:
            return _s3_error(start_response, "403 Forbidden", *problem)
        return self.app(environ, start_response)

    def problem(
        self, environ: WSGIEnvironment, query: list[tuple[str, str]], params: dict[str, str]
    ) -> tuple[str, str] | None:
        """None when the signature is S3-valid, else (S3 error code, message)."""
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return "AuthorizationQueryParametersError", "Only AWS4-HMAC-SHA256 is supported."
        try:
            access_key, date, region, service, terminal = params["X-Amz-Credential"].split("/")
            amz_date = params["X-Amz-Date"]
            expires = int(params["X-Amz-Expires"])
            signed_names = params["X-Amz-SignedHeaders"].split(";")
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            return "AuthorizationQueryParametersError", "The presigned URL is incomplete."
        secret = self.credentials.get(access_key)
        if secret is None:
            return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        if terminal != "aws4_request" or not amz_date.startswith(date):
            return "AuthorizationQueryParametersError", "The credential scope is malformed."
        if time.time() > signed_at.timestamp() + expires:
            return "AccessDenied", "Request has expired"
        if "host" not in signed_names:
            return "AuthorizationQueryParametersError", "The host header must be signed."

        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
        path = raw_uri.split("?", 1)[0] or "/"
        canonical_uri = _uri_encode(unquote(path), safe="/-_.~")
        canonical_query = "&".join(
            f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(query) if k != "X-Amz-Signature"
        )
        headers = []
        for name in signed_names:
            value = _header_value(environ, name)
            headers.append(f"{name}:{value or ''}\n")
        canonical_request = "\n".join(
            [
                str(environ["REQUEST_METHOD"]),
                canonical_uri,
                canonical_query,
                "".join(headers),
                ";".join(signed_names),
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{date}/{region}/{service}/{terminal}"
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
        )
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), terminal)
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None


def serve(port: int, access_key: str, secret_key: str) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = PresignVerifier(DomainDispatcherApplication(create_backend_app), {access_key: secret_key})
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto S3 with S3's presigned-URL signature check")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-key", default=ACCESS_KEY)
    parser.add_argument("--secret-key", default=SECRET_KEY)
    args = parser.parse_args(argv)
    serve(args.port, args.access_key, args.secret_key)


# -- the test side -----------------------------------------------------------------------------------


@dataclass
class S3Server:
    process: subprocess.Popen[str]
    port: int
    bucket: str = BUCKET
    region: str = REGION
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a function needs to use this server (S3 settings and the credentials boto3 reads)."""
        return {
            "S3_ENDPOINT_URL": self.url,
            "S3_BUCKET": self.bucket,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read_ready(process: subprocess.Popen[str], deadline: float) -> int:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {process.returncode}")
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline().strip()
            if line.startswith("READY "):
                return int(line.split()[1])
    raise RuntimeError(f"the S3 server did not start within {START_TIMEOUT:.0f} s")


def start_s3_server(bucket: str = BUCKET) -> S3Server:
    """Start the server process, wait (bounded) until it answers, create `bucket`."""
    log = tempfile.NamedTemporaryFile(prefix="eco2-s3-", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.s3_server", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        server = S3Server(process, _read_ready(process, deadline), bucket=bucket)
        client = server.client()
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": server.region})
    except Exception as exc:
        process.kill()
        process.wait(STOP_TIMEOUT)
        tail = Path(log.name).read_text(errors="replace")[-2000:]
        raise RuntimeError(f"could not start the S3 test server: {exc}\n{tail}") from exc
    finally:
        Path(log.name).unlink(missing_ok=True)  # the process keeps writing to its open descriptor
    return server


@pytest.fixture(scope="session", name="s3_server")
def s3_server_fixture() -> Iterator[S3Server]:
    """`s3_server`: one S3-compatible server process for the test session, with the bucket created.
    Import `s3_server_fixture` into a test module (or a conftest) to make the fixture available."""
    server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    main()
