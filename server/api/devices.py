"""The phones' own reports, and the supervisors' list of stuck phones.

``POST /api/v1/devices/report`` — a phone says how long its offline queue is and how old its
oldest item; ``GET /api/v1/devices/stuck`` — the devices in the caller's jurisdiction whose
work has not reached the server (see :mod:`pwa.operations` for what "stuck" means).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from hierarchy.models import User
from pwa import operations as dev
from server.auth import current_actor
from server.core.db import utcnow

from . import bp
from .common import int_arg, json_body, parse, run_write


@bp.post("/devices/report")
def report_device():  # type: ignore[no-untyped-def]
    raw = json_body()

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        body = parse(dev.DeviceReportBody, raw)
        device = dev.do_report_device(dev.check_report_device(actor, body))
        return {"device": dev.device_dict(device), "stuck_after_s":
                int(dev.STUCK_AFTER.total_seconds())}, 200

    return run_write(handler, raw)


@bp.get("/devices/stuck")
def stuck_devices():  # type: ignore[no-untyped-def]
    actor = current_actor()
    limit = int_arg("limit", 200, 1, 500)
    now = utcnow()
    devices = dev.stuck_devices(actor, limit=limit)
    return jsonify({"items": [dev.device_dict(d, now) for d in devices],
                    "stuck_after_s": int(dev.STUCK_AFTER.total_seconds())})


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """The device routes for the OpenAPI document, and the schemas they refer to."""
    from .openapi import _body, _query, _responses

    schema = dev.DeviceReportBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components = {**schema.pop("$defs", {}), "DeviceReportBody": schema}
    paths = {
        "/api/v1/devices/report": {
            "post": {"summary": "A phone reports its offline queue", "operationId": "reportDevice",
                     "requestBody": _body(dev.DeviceReportBody),
                     "responses": _responses(200, None, 403)},
        },
        "/api/v1/devices/stuck": {
            "get": {"summary": "Phones in the caller's jurisdiction whose work is stuck",
                    "operationId": "stuckDevices",
                    "parameters": [_query("limit", "1–500", type="integer", minimum=1, maximum=500)],
                    "responses": _responses(200, None, 403)},
        },
    }
    return paths, components
