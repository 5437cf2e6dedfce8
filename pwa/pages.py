"""The supervisors' page of stuck phones (``/devices/stuck``), server-rendered.

Outside ``/app/`` on purpose: it is a desktop page, not part of the phone app's offline shell.
The table itself is ``pwa/_stuck_devices.html``, which other pages (the supervisors' board)
can include with a list of :func:`pwa.operations.device_dict` results.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from server.core.db import utcnow

from . import operations as dev

bp = Blueprint("devices", __name__, template_folder="templates")


@bp.app_template_filter("local_time")
def local_time(iso: str | None) -> str:
    """An ISO time from the API as the supervisors read it: Beijing time, to the minute."""
    from datetime import datetime

    from escalation.calendar import SHANGHAI

    if not iso:
        return "—"
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%m-%d %H:%M")


@bp.get("/devices/stuck")
@login_required
def stuck():  # type: ignore[no-untyped-def]
    actor = current_user._get_current_object()  # type: ignore[attr-defined]
    now = utcnow()
    devices = [dev.device_dict(d, now) for d in dev.stuck_devices(actor)]
    return render_template("pwa/stuck.html", devices=devices,
                           stuck_after_min=int(dev.STUCK_AFTER.total_seconds() // 60))
