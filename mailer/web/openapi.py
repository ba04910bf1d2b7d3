"""The OpenAPI 3.1 document of the JSON API, served at /api/v1/openapi.json.

Built from the routes themselves: every rule under /api/v1 carries the
`Operation` its `@route` declared (mailer/web/api.py), and the pydantic models
named there become `components.schemas` (JSON Schema 2020-12, the dialect of
OpenAPI 3.1). A route without a declaration is a programming error: the
document refuses to build rather than leave it out.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mailer.extensions import csrf
from mailer.web.api import API_PREFIX, Media, Operation
from mailer.web.api_schemas import Error

api_docs = Blueprint("api_docs", __name__)
csrf.exempt(api_docs)

REF = "#/components/schemas/{model}"
# Answers any operation can give, whatever it does.
COMMON_ERRORS = {
    400: "The input is not valid; `fields` names what is wrong",
    401: "No or an invalid bearer token",
    429: "Too many requests; see Retry-After",
    500: "A fault of ours (logged); never an answer to bad input",
}
ERROR_TEXT = {
    404: "No such row",
    409: "The request conflicts with the current state",
    413: "The request body is too large",
    415: "Wrong Content-Type",
    422: "Understood but cannot be done",
}
_PATH_ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


@api_docs.get("/openapi.json")
def openapi() -> Response:
    document = current_app.extensions.get("mailer.openapi")
    if document is None:
        document = current_app.extensions["mailer.openapi"] = openapi_document(current_app)
    return jsonify(document)


def _operations(app: Flask) -> list[tuple[str, str, str, Operation]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX + "/") or rule.endpoint == "api_docs.openapi":
            continue
        op = getattr(app.view_functions[rule.endpoint], "api_operation", None)
        if op is None:
            raise RuntimeError(f"API route {rule.rule} is not declared with @route (web/api.py)")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.rule.removeprefix(API_PREFIX), method.lower(), rule.endpoint, op))
    return sorted(found)


def _models(ops: list[tuple[str, str, str, Operation]]) -> list[type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {"Error": Error}
    for *_, op in ops:
        contents = [c for codes in op.ok.values() for c in codes] + list(op.errors.values())
        if op.body is not None:
            contents.append(op.body)
        for content in contents:
            if isinstance(content, type):
                known = models.setdefault(content.__name__, content)
                if known is not content:
                    raise RuntimeError(f"two API models are named {content.__name__}")
    return list(models.values())


def _content(content: Any) -> dict[str, Any]:
    if isinstance(content, Media):
        return {content.mimetype: {"schema": {"type": "string"}}}
    return {"application/json": {"schema": {"$ref": REF.format(model=content.__name__)}}}


def _parameters(rule: str, op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for converter, name in _PATH_ARG.findall(rule):
        schema: dict[str, Any] = ({"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
                                  if converter == "int" else {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            prop = _without_null(prop)
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "schema": {k: v for k, v in prop.items() if k != "description"}}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text, never JSON null: `X | None` becomes X."""
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    if len(branches) != 1 or len(prop["anyOf"]) != 2:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**rest, **branches[0]}


def _operation(rule: str, path: str, endpoint: str, op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, contents in sorted(op.ok.items()):
        merged: dict[str, Any] = {}
        for content in contents:
            merged.update(_content(content))
        responses[str(code)] = {"description": "OK" if code < 300 else "Done", "content": merged}
    errors: dict[int, Any] = {code: Error for code in COMMON_ERRORS}
    if "{" in path:
        errors[404] = Error
    if op.body is not None:
        errors[413] = Error
    errors.update(op.errors)
    for code, model in sorted(errors.items()):
        responses[str(code)] = {"description": COMMON_ERRORS.get(code) or ERROR_TEXT.get(code, "Error"),
                                "content": _content(model)}
    out: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": op.summary,
        "tags": [endpoint.partition(".")[0].removeprefix("api_")],
        "responses": responses,
    }
    if op.description:
        out["description"] = op.description
    params = _parameters(rule, op)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _content(op.body)}
    return out


def openapi_document(app: Flask) -> dict[str, Any]:
    ops = _operations(app)
    _, schemas = models_json_schema([(m, "validation") for m in _models(ops)], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, endpoint, op in ops:
        path = _PATH_ARG.sub(lambda m: "{" + m.group(2) + "}", rule)
        paths.setdefault(path, {})[method] = _operation(rule, path, endpoint, op)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Digest mailer API",
            "version": "1",
            "description": "Generated from the pydantic models in mailer/web/api_schemas.py. "
                           "Errors are JSON {\"error\": ..., \"fields\": {field: message}}.",
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas.get("$defs", {}),
        },
        "paths": paths,
    }
