"""Photo files: checked, stored by content hash under ``YIHAO_HOME``, EXIF read, thumbnailed.

The original bytes are kept exactly (EXIF time and place are evidence); a JPEG thumbnail is
made for lists. The same bytes uploaded twice to one ticket are one photo, so a phone that
resumes an interrupted upload never creates a duplicate.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from escalation.calendar import SHANGHAI
from server.core.errors import InvalidInput, PayloadTooLarge

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 120_000_000  # a 108-megapixel phone camera still fits; bombs do not
ALLOWED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
THUMB_EDGE = 320


@dataclass(frozen=True)
class PhotoFacts:
    sha256: str
    content_type: str
    width: int
    height: int
    taken_at: datetime | None
    lng: float | None
    lat: float | None


def _rational(value: object) -> float:
    return float(value)  # type: ignore[arg-type]


def _gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:
        return None, None
    try:
        lat_ref, lat, lng_ref, lng = gps[1], gps[2], gps[3], gps[4]
        lat_v = _rational(lat[0]) + _rational(lat[1]) / 60 + _rational(lat[2]) / 3600
        lng_v = _rational(lng[0]) + _rational(lng[1]) / 60 + _rational(lng[2]) / 3600
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return None, None
    if str(lat_ref).upper().startswith("S"):
        lat_v = -lat_v
    if str(lng_ref).upper().startswith("W"):
        lng_v = -lng_v
    if not (-90 <= lat_v <= 90 and -180 <= lng_v <= 180):
        return None, None
    return lng_v, lat_v


def _taken_at(exif: Image.Exif) -> datetime | None:
    """EXIF DateTimeOriginal has no zone; phones here write Beijing time."""
    try:
        raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal) \
            or exif.get(ExifTags.Base.DateTime)
    except Exception:
        return None
    if not raw:
        return None
    try:
        local = datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return local.replace(tzinfo=SHANGHAI).astimezone(UTC)


def inspect(data: bytes) -> PhotoFacts:
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"a photo may be at most {MAX_BYTES // (1024 * 1024)} MB",
                              code="photo_too_large")
    if not data:
        raise InvalidInput("the photo file is empty", code="invalid_photo")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    unreadable = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                  Image.DecompressionBombError)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()  # only valid straight after open (a PNG's getexif() decodes first)
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
    except unreadable as exc:
        raise InvalidInput(f"not a readable image: {exc}", code="invalid_photo") from None
    if fmt not in ALLOWED:
        raise InvalidInput(f"photos must be JPEG, PNG or WebP, not {fmt or 'unknown'}",
                           code="unsupported_photo_type")
    if width * height > MAX_PIXELS:  # before anything decodes it: a bomb stays a header
        raise InvalidInput(f"{width}×{height} pixels is more than a phone takes",
                           code="invalid_photo")
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            img.draft("RGB", (THUMB_EDGE * 2, THUMB_EDGE * 2))
            img.load()  # a truncated upload fails here, not later while thumbnailing
    except unreadable as exc:
        raise InvalidInput(f"not a readable image: {exc}", code="invalid_photo") from None
    lng, lat = _gps(exif)
    return PhotoFacts(
        sha256=hashlib.sha256(data).hexdigest(), content_type=ALLOWED[fmt], width=width,
        height=height, taken_at=_taken_at(exif), lng=lng, lat=lat,
    )


def new_photo_id() -> str:
    return str(uuid.uuid4())


def storage_key(sha256: str, content_type: str) -> str:
    ext = content_type.split("/")[1].replace("jpeg", "jpg")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"


def store(root: Path, key: str, data: bytes) -> None:
    """Write the original and its thumbnail; content-addressed, so rewriting is harmless."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # A temporary name of its own: two uploads of the same bytes must not share one.
        tmp = path.with_suffix(f"{path.suffix}.{uuid.uuid4().hex}.part")
        tmp.write_bytes(data)
        tmp.replace(path)
    thumb = thumb_path(root, key)
    if not thumb.exists():
        thumb.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (THUMB_EDGE * 2, THUMB_EDGE * 2))  # JPEG: decode small, save memory
            small = ImageOps.exif_transpose(img).convert("RGB")
            small.thumbnail((THUMB_EDGE, THUMB_EDGE))
            tmp = thumb.with_suffix(f".{uuid.uuid4().hex}.part")
            small.save(tmp, "JPEG", quality=80)
            tmp.replace(thumb)


def thumb_path(root: Path, key: str) -> Path:
    return root / "thumbs" / (key.rsplit(".", 1)[0] + ".jpg")
