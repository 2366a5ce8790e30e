"""A small client of the OCI distribution API (v2): what `eco2 build` and `eco2 deploy` need.

- Pull: a manifest by tag or digest (an image index resolves to its linux/amd64 entry), a blob.
- Push: `HEAD` a blob first and skip it when the repository already has it; else mount it from
  another repository of the same registry (`POST ?mount=&from=`), else upload it (`POST` then one
  `PUT ?digest=`); then `PUT` the manifest and check the digest the registry reports.
- Credentials: `auths.<registry>.auth` (base64 `user:password`) from `$DOCKER_CONFIG/config.json`
  or `~/.docker/config.json`, used for HTTP Basic or to get a Bearer token from the realm a 401
  names (how ghcr.io, Docker Hub and distribution's token auth work).

Plain HTTP is used for loopback registries (127.0.0.1, localhost) and those in
`ECO2_INSECURE_REGISTRIES` (comma list); everything else is HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT = 60.0


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Reference:
    """`host[:port]/repository[:tag][@digest]`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        rest, _, digest = text.partition("@")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
            if "/" not in path:
                path = f"library/{path}"
        tag = None
        if ":" in path.rsplit("/", 1)[-1]:
            path, _, tag = path.rpartition(":")
        if registry == "docker.io":
            registry = DOCKER_HUB
        if not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", path):
            raise RegistryError(f"{text!r}: not an image reference (registry/repository[:tag][@sha256:...])")
        if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise RegistryError(f"{text!r}: the digest is not sha256:<64 hex>")
        return cls(registry, path, tag or (None if digest else "latest"), digest or None)

    @property
    def ref(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def pinned(self, digest: str) -> str:
        """The same repository, by digest (what a Knative Service should run)."""
        return f"{self.registry}/{self.repository}@{digest}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_credentials(registry: str, environ: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(user, password) for `registry` from the Docker config file, if it holds any."""
    env = dict(os.environ) if environ is None else environ
    folder = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
    path = folder / "config.json"
    try:
        auths = json.loads(path.read_text(encoding="utf-8")).get("auths", {})
    except (OSError, ValueError):
        return None
    names = {
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v1/",
        f"https://{registry}/v2/",
    }
    if registry == DOCKER_HUB:
        names |= {"docker.io", "index.docker.io", "https://index.docker.io/v1/"}
    for key, entry in auths.items():
        if key.rstrip("/") in {n.rstrip("/") for n in names} and isinstance(entry, dict) and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
    return None


def _insecure(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry
    listed = {h.strip() for h in os.environ.get("ECO2_INSECURE_REGISTRIES", "").split(",") if h.strip()}
    return host in ("127.0.0.1", "localhost", "[::1]") or registry in listed or host in listed


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


@dataclass
class Registry:
    """One registry host. `sent` records the digests this client uploaded (blobs, then manifests)."""

    host: str
    credentials: tuple[str, str] | None = None
    session: requests.Session = field(default_factory=requests.Session)
    sent: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_host(cls, host: str) -> Registry:
        return cls(host, docker_credentials(host))

    @property
    def base(self) -> str:
        return f"{'http' if _insecure(self.host) else 'https'}://{self.host}"

    # -- HTTP with the registry's auth --------------------------------------------------------------
    def _request(self, method: str, url: str, scope: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if scope in self._tokens:
            headers["Authorization"] = self._tokens[scope]
        kwargs.setdefault("timeout", TIMEOUT)
        data = kwargs.get("data")
        response = self.session.request(method, url, headers=headers, **kwargs)
        if response.status_code != 401:
            return response
        authorization = self._authorize(response.headers.get("WWW-Authenticate", ""), scope)
        if authorization is None:
            return response
        self._tokens[scope] = headers["Authorization"] = authorization
        if data is not None and hasattr(data, "seek"):
            data.seek(0)
        return self.session.request(method, url, headers=headers, **kwargs)

    def _authorize(self, header: str, scope: str) -> str | None:
        scheme, params = _challenge(header)
        if scheme == "basic":
            if self.credentials is None:
                return None
            return "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        if scheme == "bearer" and "realm" in params:
            query = {"service": params.get("service", self.host), "scope": scope}
            auth = self.credentials if self.credentials else None
            got = self.session.get(params["realm"], params=query, auth=auth, timeout=TIMEOUT)
            if got.status_code != 200:
                raise RegistryError(f"{self.host}: the token service refused {scope}: HTTP {got.status_code}")
            body = got.json()
            token = body.get("token") or body.get("access_token")
            return f"Bearer {token}" if token else None
        return None

    def _url(self, repository: str, tail: str) -> str:
        return f"{self.base}/v2/{repository}/{tail}"

    @staticmethod
    def _scope(repository: str, push: bool) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    def _fail(self, response: requests.Response, what: str) -> RegistryError:
        detail = response.text.strip()[:300]
        if response.status_code == 401:
            detail = "unauthorized (credentials come from auths in ~/.docker/config.json or $DOCKER_CONFIG)"
        return RegistryError(f"{self.host}: {what}: HTTP {response.status_code} {detail}")

    # -- pull -------------------------------------------------------------------------------------
    def manifest(self, repository: str, ref: str, platform: tuple[str, str] = ("linux", "amd64")) -> tuple[bytes, str]:
        """(manifest bytes, digest) of an image manifest; an index resolves to `platform`'s entry."""
        url = self._url(repository, f"manifests/{ref}")
        response = self._request(
            "GET", url, self._scope(repository, False), headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if response.status_code != 200:
            raise self._fail(response, f"manifest {repository}:{ref}")
        body = response.content
        media_type = json.loads(body).get("mediaType") or response.headers.get("Content-Type", "")
        if media_type in (OCI_INDEX, DOCKER_LIST):
            for entry in json.loads(body).get("manifests", []):
                wanted = entry.get("platform", {})
                if (wanted.get("os"), wanted.get("architecture")) == platform:
                    return self.manifest(repository, entry["digest"], platform)
            raise RegistryError(f"{repository}:{ref} has no {platform[0]}/{platform[1]} image")
        digest = sha256(body)
        if ref.startswith("sha256:") and digest != ref:
            raise RegistryError(f"{repository}@{ref}: the registry sent a manifest with digest {digest}")
        return body, digest

    def blob(self, repository: str, digest: str) -> bytes:
        response = self._request("GET", self._url(repository, f"blobs/{digest}"), self._scope(repository, False))
        if response.status_code != 200:
            raise self._fail(response, f"blob {digest}")
        if sha256(response.content) != digest:
            raise RegistryError(f"{self.host}: blob {digest} arrived with another digest")
        return response.content

    def blob_stream(self, repository: str, digest: str) -> Iterator[bytes]:
        response = self._request(
            "GET", self._url(repository, f"blobs/{digest}"), self._scope(repository, False), stream=True
        )
        if response.status_code != 200:
            raise self._fail(response, f"blob {digest}")
        yield from response.iter_content(1 << 20)

    # -- push -------------------------------------------------------------------------------------
    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._request("HEAD", self._url(repository, f"blobs/{digest}"), self._scope(repository, True))
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, f"HEAD blob {digest}")

    def _start_upload(self, repository: str, query: dict[str, str] | None = None) -> requests.Response:
        return self._request(
            "POST",
            self._url(repository, "blobs/uploads/"),
            self._scope(repository, True),
            params=query or {},
            headers={"Content-Length": "0"},
        )

    def mount(self, repository: str, digest: str, source: str) -> bool:
        """Ask the registry to link a blob of `source` into `repository` (nothing is sent)."""
        response = self._start_upload(repository, {"mount": digest, "from": source})
        if response.status_code == 201:
            self.mounted.append(digest)
            return True
        if response.status_code == 202:  # not mountable: the registry opened an upload; drop it
            location = response.headers.get("Location")
            if location:
                self._request("DELETE", urljoin(self.base, location), self._scope(repository, True))
            return False
        raise self._fail(response, f"mount {digest} from {source}")

    def upload(self, repository: str, digest: str, data: bytes | Path) -> None:
        started = self._start_upload(repository)
        if started.status_code != 202 or "Location" not in started.headers:
            raise self._fail(started, f"start upload of {digest}")
        location = urljoin(self.base + "/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(data, Path):
            with data.open("rb") as body:
                done = self._request(
                    "PUT",
                    f"{location}{separator}digest={digest}",
                    self._scope(repository, True),
                    data=body,
                    headers=headers,
                )
        else:
            done = self._request(
                "PUT",
                f"{location}{separator}digest={digest}",
                self._scope(repository, True),
                data=data,
                headers=headers,
            )
        if done.status_code != 201:
            raise self._fail(done, f"upload of {digest}")
        self.sent.append(digest)

    def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str = OCI_MANIFEST) -> str:
        response = self._request(
            "PUT",
            self._url(repository, f"manifests/{tag}"),
            self._scope(repository, True),
            data=body,
            headers={"Content-Type": media_type},
        )
        if response.status_code not in (200, 201):
            raise self._fail(response, f"manifest {repository}:{tag}")
        digest = sha256(body)
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise RegistryError(f"{self.host}: stored the manifest as {reported}, expected {digest}")
        self.sent.append(digest)
        return digest
