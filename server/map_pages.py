"""The map screen (地图): grids coloured by their open load, open tickets as points, the county
outline, and drawing or redrawing a grid by hand.

Everything the page shows comes from the JSON API (``/api/v1/grids``, ``/api/v1/map/…``) and a
drawing is saved through ``PUT /api/v1/grids/<code>``, which validates it exactly like a file
import (:func:`grids.operations.check_draw_grid`). Leaflet is served from the installed
``xstatic-leaflet`` package, and the base layer is ``YIHAO_MAP_TILES`` — empty by default, so
the map never asks the internet for anything.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, redirect, render_template, send_from_directory, url_for
from flask_login import current_user, login_required

from grids.operations import GRID_EDIT_ROLES
from hierarchy.models import STEERING_ROLES, Level, Role, Unit
from hierarchy.scoping import in_subtree
from server.core.db import db
from server.core.errors import Forbidden

from .api.map import HEAVY, LIGHT

bp = Blueprint("map", __name__)

#: Villages offered in the drawing form (a county has a few hundred).
VILLAGE_LIMIT = 3000


def leaflet_dir() -> str:
    """Where the installed xstatic-leaflet package keeps leaflet.js, leaflet.css and images."""
    import xstatic.pkg.leaflet as leaflet

    return str(leaflet.BASE_DIR)


@bp.get("/vendor/leaflet/<path:filename>")
def leaflet_asset(filename: str):  # type: ignore[no-untyped-def]
    """Leaflet's own files, straight from the package (public: no data in them)."""
    if not filename.endswith((".js", ".css", ".png", ".map")):
        abort(404)
    return send_from_directory(leaflet_dir(), filename, max_age=7 * 86400)


@bp.get("/map")
@login_required
def index():  # type: ignore[no-untyped-def]
    actor = current_user._get_current_object()
    if actor.role == Role.grid_worker:
        return redirect(url_for("pages.index"))
    if actor.role not in STEERING_ROLES | GRID_EDIT_ROLES:
        raise Forbidden("地图供工作站、督办人员和管理员使用")
    can_edit = actor.role in GRID_EDIT_ROLES
    villages = []
    if can_edit:
        villages = db.session.execute(
            sa.select(Unit.code, Unit.name).where(in_subtree(Unit.path, actor.unit.path),
                                                  Unit.level == Level.village.value,
                                                  Unit.active.is_(True))
            .order_by(Unit.code).limit(VILLAGE_LIMIT)).all()
    config: dict[str, Any] = {
        "tiles": current_app.config.get("YIHAO_MAP_TILES") or "",
        "attribution": current_app.config.get("YIHAO_MAP_TILES_ATTRIBUTION") or "",
        "canEdit": can_edit,
        "thresholds": {"light": LIGHT, "heavy": HEAVY},
        "urls": {
            "grids": url_for("api.list_grids"), "load": url_for("api.map_load"),
            "tickets": url_for("api.map_tickets"), "boundary": url_for("api.map_boundary"),
            "draw": url_for("api.draw_grid", code="__CODE__"),
            # The desk's workbench for those who steer; the plain ticket page for the rest.
            "ticket": url_for("station.ticket" if actor.role in STEERING_ROLES else "pages.ticket",
                              number="__NUMBER__"),
        },
    }
    return render_template("map.html", config=config, villages=villages, can_edit=can_edit,
                           LIGHT=LIGHT, HEAVY=HEAVY)
