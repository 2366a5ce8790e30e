"""OpenAPI 3.1 from the declared routes and their pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from eco2.core.function import Function, Route

REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail", "code"],
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
}


def _schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        _, top = models_json_schema([(tp, "serialization")], ref_template=REF)
        components.update(top.get("$defs", {}))
        return {"$ref": REF.format(model=tp.__name__)}
    schema = TypeAdapter(tp).json_schema(ref_template=REF, mode="serialization")
    components.update(schema.pop("$defs", {}))
    return schema


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary or route.handler.__name__.replace("_", " "),
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in route.params],
        "responses": {
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        },
    }
    if route.query is not None:
        for name, field in route.query.model_fields.items():
            op["parameters"].append(
                {
                    "name": field.alias or name,
                    "in": "query",
                    "required": field.is_required(),
                    "schema": TypeAdapter(field.annotation if field.annotation is not None else Any).json_schema(),
                }
            )
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(route.body, components)}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _schema(route.response, components)}}
    op["responses"][str(route.status)] = ok
    if route.auth:
        op["security"] = [{"cookie": []}, {"bearer": []}]
        op["responses"]["401"] = {"description": "Not signed in or expired"}
        op["responses"]["403"] = {"description": "Revoked or forbidden"}
    return op


def document(functions: list[Function], title: str = "Eco² API") -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for function in functions:
        for route in function.routes:
            op = _operation(route, components)
            op["tags"] = [function.name]
            paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": "s_access"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
