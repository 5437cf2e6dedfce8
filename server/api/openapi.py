"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from server.tickets import schemas
from server.tickets.operations import ACTIONS

ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(ok: int, ok_schema: dict[str, Any] | None = None, *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(ok): {"description": "OK", "content": {"application/json": {
            "schema": ok_schema or {"type": "object"}}}},
    }
    for code in (401, 422, *codes):
        out[str(code)] = {"description": "Error", "content": {"application/json": {
            "schema": ERROR}}}
    return out


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "maxLength": 128},
               "description": "A repeated key returns the first result and changes nothing."}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


@cache
def build_openapi() -> dict[str, Any]:
    from .meta import LoginBody
    from .reference import MatchBody

    models: list[type[BaseModel]] = [schemas.AcceptBody, LoginBody, MatchBody]
    models += [a.body for a in ACTIONS.values()]
    components: dict[str, Any] = {
        "Error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "details": {"type": "object"}},
        },
    }
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = sub
        components[model.__name__] = schema

    paths: dict[str, Any] = {
        "/api/v1/tickets": {
            "post": {"summary": "Accept a ticket", "operationId": "acceptTicket",
                     "parameters": [IDEMPOTENCY], "requestBody": _body(schemas.AcceptBody),
                     "responses": _responses(201, None, 403, 409)},
            "get": {"summary": "Tickets visible to the caller", "operationId": "listTickets",
                    "parameters": [
                        _query("status", "comma-separated statuses"),
                        _query("urgency", "comma-separated"), _query("type", "comma-separated"),
                        _query("source", "comma-separated"), _query("unit", "unit code"),
                        _query("grid", "grid code"), _query("assignee", "username or 'me'"),
                        _query("overdue", "true for overdue only"),
                        _query("q", "title contains, or the number", maxLength=100,
                               type="string"),
                        _query("external_id", "the caller's id"),
                        _query("cursor", "from next_cursor"),
                        _query("limit", "1–200", type="integer", minimum=1, maximum=200),
                    ],
                    "responses": _responses(200)},
        },
        "/api/v1/tickets/{number}": {
            "get": {"summary": "One ticket", "operationId": "getTicket", "parameters": [NUMBER],
                    "responses": _responses(200, None, 404)},
        },
        "/api/v1/tickets/{number}/events": {
            "get": {"summary": "The ticket's audit chain", "operationId": "ticketEvents",
                    "parameters": [NUMBER], "responses": _responses(200, None, 404)},
        },
        "/api/v1/tickets/{number}/photos": {
            "post": {"summary": "Upload a photo (multipart field 'file')",
                     "operationId": "uploadPhoto", "parameters": [NUMBER, IDEMPOTENCY],
                     "requestBody": {"required": True, "content": {"multipart/form-data": {
                         "schema": {"type": "object", "required": ["file"], "properties": {
                             "file": {"type": "string", "format": "binary"}}}}}},
                     "responses": _responses(201, None, 403, 404, 409, 413)},
        },
        "/api/v1/tickets/{number}/reveal-reporter": {
            "post": {"summary": "Unmasked reporter details (audited)",
                     "operationId": "revealReporter", "parameters": [NUMBER, IDEMPOTENCY],
                     "responses": _responses(200, None, 403, 404)},
        },
        "/api/v1/units": {
            "get": {"summary": "Units in the caller's subtree", "operationId": "listUnits",
                    "parameters": [_query("level", "province…village"),
                                   _query("parent", "parent unit code"),
                                   _query("q", "name contains"), _query("cursor", "cursor"),
                                   _query("limit", "1–1000", type="integer", minimum=1,
                                          maximum=1000)],
                    "responses": _responses(200)},
        },
        "/api/v1/grids": {
            "get": {"summary": "Grids as GeoJSON", "operationId": "listGrids",
                    "parameters": [_query("unit", "village or any ancestor unit code"),
                                   _query("bbox", "minlng,minlat,maxlng,maxlat (WGS-84)"),
                                   _query("crs", "coordinates returned in", type="string",
                                          enum=["wgs84", "gcj02", "bd09"])],
                    "responses": _responses(200)},
        },
        "/api/v1/grids/match": {
            "post": {"summary": "Match a point or address", "operationId": "matchGrid",
                     "requestBody": _body(MatchBody), "responses": _responses(200)},
        },
        "/api/v1/session": {
            "post": {"summary": "Log in", "operationId": "login", "security": [],
                     "requestBody": _body(LoginBody), "responses": _responses(200)},
        },
        "/api/v1/me": {"get": {"summary": "Who am I", "operationId": "me",
                               "responses": _responses(200)}},
    }
    for action in ACTIONS.values():
        paths[f"/api/v1/tickets/{{number}}/{action.name}"] = {
            "post": {
                "summary": action.summary,
                "operationId": "ticket_" + action.name.replace("-", "_"),
                "parameters": [NUMBER, IDEMPOTENCY],
                "requestBody": _body(action.body),
                "responses": _responses(200, None, 403, 404, 409),
            }
        }
    from .escalations import openapi_paths as escalation_paths

    paths.update(escalation_paths())
    # The map screen's reads and the hand-drawn grid (server/api/map.py).
    from .map import DrawGridBody
    from .map import openapi_paths as map_paths

    paths.update(map_paths())
    schema = DrawGridBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components["DrawGridBody"] = schema
    # The phones' queue reports and the stuck-device list (server/api/devices.py).
    from .devices import openapi_paths as device_paths

    more_paths, more_schemas = device_paths()
    paths.update(more_paths)
    components.update(more_schemas)
    # Smart routing: categories, corrections, duplicates, hand-offs (server/api/routing.py).
    from .routing import openapi_paths as routing_paths

    more_paths, more_schemas = routing_paths()
    paths.update(more_paths)
    components.update(more_schemas)
    # Web Push subscriptions and who push reaches (server/api/push.py).
    from .push import openapi_paths as push_paths

    more_paths, more_schemas = push_paths()
    paths.update(more_paths)
    components.update(more_schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Yihao (一号) API", "version": "1",
                 "description": "The grid-level field workflow beneath a 12345 hotline."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
