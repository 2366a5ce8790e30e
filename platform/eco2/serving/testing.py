"""An in-process client that drives a function's real functions-framework target.

with FunctionClient("users", env) as client:
    client.get("/api/v1/users/me", headers=...)
    client.cloudevent("eco2.character.granted.v1", {...})
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from werkzeug.test import TestResponse

from eco2.core import funcyaml
from eco2.serving.server import container_env, create_app


class FunctionClient:
    def __init__(self, name: str, env: Mapping[str, str], root: Path | None = None) -> None:
        root = root or funcyaml.find_root()
        spec = funcyaml.load(root / "func.yaml").get(name)
        self.app, self.runtime = create_app(spec, root, container_env(spec, env))
        self.runtime.start()
        self.http = self.app.test_client()

    def __enter__(self) -> FunctionClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.runtime.close()

    def set_cookie(self, name: str, value: str) -> None:
        self.http.set_cookie(name, value)

    def clear_cookies(self) -> None:
        for name in ("s_access", "s_refresh"):
            self.http.delete_cookie(name)

    def request(self, method: str, path: str, **kw: Any) -> TestResponse:
        return self.http.open(path, method=method, **kw)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.http.post(path, **kw)

    def patch(self, path: str, **kw: Any) -> TestResponse:
        return self.http.patch(path, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.http.delete(path, **kw)

    def options(self, path: str, **kw: Any) -> TestResponse:
        return self.http.options(path, **kw)

    def cloudevent(
        self,
        event_type: str,
        data: Any,
        *,
        source: str = "/tests",
        event_id: str | None = None,
        mode: Literal["binary", "structured"] = "binary",
        extensions: Mapping[str, str] | None = None,
        path: str = "/",
    ) -> TestResponse:
        attrs = {"specversion": "1.0", "id": event_id or uuid.uuid4().hex, "source": source, "type": event_type}
        attrs.update(extensions or {})
        if mode == "structured":
            body = json.dumps({**attrs, "datacontenttype": "application/json", "data": data})
            return self.http.post(path, data=body, content_type="application/cloudevents+json")
        headers = {f"ce-{k}": v for k, v in attrs.items()}
        return self.http.post(path, data=json.dumps(data), headers=headers, content_type="application/json")
