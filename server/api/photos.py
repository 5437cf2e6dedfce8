"""Photo upload and download, scoped through the ticket they belong to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app, request, send_file

from hierarchy.models import User
from server.auth import current_actor
from server.core.db import db
from server.core.errors import InvalidInput, NotFound
from server.tickets import operations as ops
from server.tickets import photos
from server.tickets.models import Photo
from server.tickets.queries import get_visible_ticket, visible_clause

from . import bp
from .common import run_write


def _photo_dir() -> Path:
    return Path(current_app.config["YIHAO_PHOTO_DIR"])


def photo_dict(photo: Photo, duplicate: bool = False) -> dict[str, Any]:
    return {
        "id": photo.id, "sha256": photo.sha256, "content_type": photo.content_type,
        "size": photo.size, "width": photo.width, "height": photo.height,
        "taken_at": photo.taken_at.isoformat() if photo.taken_at else None,
        "location": None if photo.lng is None else {"lng": photo.lng, "lat": photo.lat,
                                                     "crs": "wgs84"},
        "url": f"/api/v1/photos/{photo.id}", "thumb_url": f"/api/v1/photos/{photo.id}/thumb",
        "duplicate": duplicate,
    }


@bp.post("/tickets/<number>/photos")
def upload_photo(number: str):  # type: ignore[no-untyped-def]
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("send the photo as multipart field 'file'", code="photo_required")
    data = upload.read(photos.MAX_BYTES + 1)
    facts = photos.inspect(data)

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        ticket = get_visible_ticket(actor, number, lock=True)
        checked = ops.check_upload_photo(actor, ticket)
        existing = db.session.execute(
            sa.select(Photo).where(Photo.ticket_id == ticket.id, Photo.sha256 == facts.sha256)
        ).scalar_one_or_none()
        if existing is not None:
            return photo_dict(existing, duplicate=True), 200
        key = photos.storage_key(facts.sha256, facts.content_type)
        photos.store(_photo_dir(), key, data)  # content-addressed: an orphan is harmless
        photo = Photo(
            id=photos.new_photo_id(), ticket_id=ticket.id, uploaded_by_id=actor.id,
            sha256=facts.sha256, content_type=facts.content_type, size=len(data),
            width=facts.width, height=facts.height, taken_at=facts.taken_at,
            lng=facts.lng, lat=facts.lat, storage_key=key,
        )
        ops.do_upload_photo(checked, photo)
        return photo_dict(photo), 201

    return run_write(handler, {"sha256": facts.sha256})


def _visible_photo(photo_id: str) -> Photo:
    actor = current_actor()
    from server.tickets.models import Ticket

    photo = db.session.execute(
        sa.select(Photo).join(Ticket, Ticket.id == Photo.ticket_id)
        .where(Photo.id == photo_id, visible_clause(actor))
    ).scalar_one_or_none()
    if photo is None:
        raise NotFound("photo not found", code="photo_not_found")
    return photo


@bp.get("/photos/<photo_id>")
def get_photo(photo_id: str):  # type: ignore[no-untyped-def]
    photo = _visible_photo(photo_id)
    path = _photo_dir() / photo.storage_key
    if not path.exists():
        raise NotFound("the photo file is missing from storage", code="photo_file_missing")
    return send_file(path, mimetype=photo.content_type, max_age=86400)


@bp.get("/photos/<photo_id>/thumb")
def get_photo_thumb(photo_id: str):  # type: ignore[no-untyped-def]
    photo = _visible_photo(photo_id)
    path = photos.thumb_path(_photo_dir(), photo.storage_key)
    if not path.exists():
        raise NotFound("the thumbnail is missing from storage", code="photo_file_missing")
    return send_file(path, mimetype="image/jpeg", max_age=86400)

