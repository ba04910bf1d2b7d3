"""How a JSON API route is declared, checked and answered (`Authorization: Bearer <token>`).

Each resource module (api_articles, api_readers, api_digests, api_feeds,
api_editions) makes its blueprint with `api_blueprint()` and declares routes
with `@route(...)`, naming the pydantic models of its query string, body and
answers (mailer/web/api_schemas.py). The decorator validates the request
before the view runs, hands the view plain model objects, serialises what it
returns and refuses to answer with a shape it did not declare. The same
declarations produce the OpenAPI document (mailer/web/openapi.py).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel
from pydantic import ValidationError as SchemaError

from mailer.common import NotFound, ValidationError
from mailer.console import check_token, scope_allows
from mailer.content import MAX_ID
from mailer.extensions import csrf, db
from mailer.runtime import runtime

API_PREFIX = "/api/v1"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Media:
    """A response or request body that is not JSON (CSV, HTML, plain text)."""

    mimetype: str
    description: str


Content = type[BaseModel] | Media


@dataclass(frozen=True)
class Operation:
    """One documented API operation, as the route declared it."""

    summary: str
    ok: dict[int, tuple[Content, ...]]
    body: Content | None = None
    query: type[BaseModel] | None = None
    # Error statuses beyond the ones every operation can answer (400, 401, 429;
    # 404 when the path names a row; 413 when there is a body).
    errors: dict[int, type[BaseModel]] = field(default_factory=dict)
    description: str = ""


def authenticate() -> tuple[Response, int] | None:
    """Bearer token, and its scope (capped by its owner's current role): `read`
    for GET, `write` for anything else; admin routes also call require_scope."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    scope = None
    if scheme.lower() == "bearer":
        scope = check_token(db.session, token.strip(), runtime().settings.api_token)
    if scope is None:
        return jsonify(error="missing or invalid API token",
                       fields={"Authorization": "Bearer token required"}), 401
    g.api_scope = scope
    needed = "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"
    if not scope_allows(scope, needed):
        return _scope_error(needed)
    return None


def _scope_error(needed: str) -> tuple[Response, int]:
    return jsonify(error=f"this token's scope does not allow this (needs {needed})",
                   fields={"Authorization": f"a token with scope {needed} is required"}), 403


def require_scope(needed: str) -> tuple[Response, int] | None:
    """For admin-only routes: `if (denied := require_scope("admin")): return denied`."""
    return None if scope_allows(g.get("api_scope"), needed) else _scope_error(needed)


def api_blueprint(name: str) -> Blueprint:
    """A blueprint for API routes: bearer token required, no CSRF (no cookies)."""
    blueprint = Blueprint(name, __name__)
    csrf.exempt(blueprint)
    blueprint.before_request(authenticate)
    return blueprint


def _field_errors(exc: SchemaError) -> dict[str, str]:
    """pydantic's errors keyed by the top-level field they concern."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else "body"
        message = str(error["msg"])
        positions = [str(part) for part in loc[1:] if isinstance(part, int)]
        if positions:
            message = f"item {'.'.join(positions)}: {message}"
        fields.setdefault(name, message)
        if len(loc) > 1:  # also the full path of a nested field: steps[0].delay_minutes
            path = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
            fields.setdefault(path, message)
    return fields


def validate(model: type[M], data: object, where: str = "body") -> M:
    """`data` checked against `model`, or a ValidationError (400) naming the fields."""
    try:
        return model.model_validate(data)
    except SchemaError as exc:
        fields = _field_errors(exc)
        summary = "; ".join(f"{name}: {message}" for name, message in list(fields.items())[:3])
        raise ValidationError(f"The {where} is not valid ({summary}).", fields) from None


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 naming `body`."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        data = None
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.", {"body": "not a JSON object"})
    return data


def _serialise(op: Operation, result: Any) -> Response:
    status = 0
    if isinstance(result, tuple):
        result, status = result
    if isinstance(result, Response):
        if status:
            result.status_code = status
        return result
    if not status:
        status = min(op.ok)
    declared = op.ok.get(status) or ((op.errors[status],) if status in op.errors else ())
    allowed = [c for c in declared if isinstance(c, type)]
    if not isinstance(result, BaseModel) or not isinstance(result, tuple(allowed)):
        raise TypeError(f"{request.endpoint} answered {type(result).__name__} with {status}; "
                        f"declared {[c.__name__ for c in allowed]}")
    return Response(result.model_dump_json(exclude_unset=True), status=status,
                    mimetype="application/json")


_PATH_ARG = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def route(blueprint: Blueprint, method: str, rule: str, summary: str, *,
          ok: Mapping[int, Content | tuple[Content, ...]],
          body: Content | None = None, query: type[BaseModel] | None = None,
          errors: Mapping[int, type[BaseModel]] | None = None,
          description: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API route. The view gets its path arguments, `query=` and `body=`
    (validated models) when declared, and returns a model, (model, status) or,
    for non-JSON answers, a Response."""
    op = Operation(summary=summary, body=body, query=query, errors=dict(errors or {}),
                   description=description,
                   ok={code: c if isinstance(c, tuple) else (c,) for code, c in ok.items()})
    int_args = [name for converter, name in _PATH_ARG.findall(rule) if converter == "int"]

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def endpoint(**path: Any) -> Response:
            for name in int_args:  # ids beyond 32 bits name no row
                if not 0 < path[name] <= MAX_ID:
                    raise NotFound(f"No such {name.removesuffix('_id')} ({path[name]}).")
            kwargs = dict(path)
            if op.query is not None:
                kwargs["query"] = validate(op.query, request.args.to_dict(flat=True), "query string")
            if isinstance(op.body, type):
                kwargs["body"] = validate(op.body, json_body())
            return _serialise(op, view(**kwargs))

        endpoint.api_operation = op  # type: ignore[attr-defined]
        blueprint.add_url_rule(rule, view_func=endpoint, methods=[method])
        return endpoint

    return decorate


def given(model: BaseModel) -> dict[str, Any]:
    """The fields the client sent (not defaults), as plain values for a service."""
    return model.model_dump(exclude_unset=True)
