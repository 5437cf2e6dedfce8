"""Photos: evidence kept byte for byte, EXIF time and place read, duplicates folded, bad files
refused with a code — never a 500, and never outside the uploader's jurisdiction.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import ExifTags, Image

from tests.conftest import Api

TAKEN_LOCAL = "2024:05:01 10:30:00"  # Beijing time, as phones here write it
TAKEN_UTC = "2024-05-01T02:30:00+00:00"
LNG, LAT = 123.4305, 41.7420


def exif_jpeg(size: tuple[int, int] = (640, 480), colour: tuple[int, int, int] = (10, 100, 200),
              *, gps: bool = True, taken: str | None = TAKEN_LOCAL) -> bytes:
    """A JPEG as a phone makes it: DateTimeOriginal in local time, GPS in degrees/min/sec."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "YihaoTestCam"
    if taken:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    if gps:
        info = exif.get_ifd(ExifTags.IFD.GPSInfo)
        info[ExifTags.GPS.GPSLatitudeRef] = "N"
        info[ExifTags.GPS.GPSLatitude] = (41.0, 44.0, 31.2)  # 41.7420
        info[ExifTags.GPS.GPSLongitudeRef] = "E"
        info[ExifTags.GPS.GPSLongitude] = (123.0, 25.0, 49.8)  # 123.4305
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", exif=exif, quality=90)
    return buf.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (250, 10, 10)).save(buf, fmt)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 15000, height: int = 15000) -> bytes:
    """A valid-looking PNG header claiming a huge canvas, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _chunk(b"IEND", b""))


@pytest.fixture
def upload(client: FlaskClient, as_user: Callable[[str], Api]) -> Callable[..., Any]:
    def _upload(user: str, number: str, data: bytes, *, filename: str = "photo.jpg",
                key: str | None = None) -> Any:
        return client.post(f"/api/v1/tickets/{number}/photos",
                           headers=as_user(user).headers(key),
                           data={"file": (io.BytesIO(data), filename)},
                           content_type="multipart/form-data")

    return _upload


def _photo_events(api: Api, number: str) -> list[dict[str, Any]]:
    return [e for e in api.get(f"/tickets/{number}/events").get_json()["items"]
            if e["kind"] == "photo"]


def test_upload_keeps_exif_time_and_place(as_user, walk, upload) -> None:
    number = walk("on_site")
    data = exif_jpeg()
    resp = upload("worker", number, data)
    assert resp.status_code == 201, resp.get_json()
    photo = resp.get_json()
    assert photo["duplicate"] is False
    assert photo["content_type"] == "image/jpeg"
    assert (photo["width"], photo["height"]) == (640, 480)
    assert photo["size"] == len(data)
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()
    assert photo["taken_at"] == TAKEN_UTC  # Beijing 10:30 is 02:30 UTC
    assert datetime.fromisoformat(photo["taken_at"]).utcoffset().total_seconds() == 0
    assert photo["location"]["lng"] == pytest.approx(LNG, abs=1e-6)
    assert photo["location"]["lat"] == pytest.approx(LAT, abs=1e-6)
    assert photo["location"]["crs"] == "wgs84"
    events = _photo_events(as_user("worker"), number)
    assert len(events) == 1
    assert events[0]["data"]["photo"] == photo["id"]
    assert events[0]["data"]["sha256"] == photo["sha256"]
    assert events[0]["data"]["taken_at"] == TAKEN_UTC and events[0]["data"]["has_gps"] is True


def test_original_returned_byte_for_byte(as_user, walk, upload) -> None:
    number = walk("in_progress")
    data = exif_jpeg()
    photo = upload("worker", number, data).get_json()
    for user in ("worker", "township", "county", "hotline"):
        resp = as_user(user).get(f"/photos/{photo['id']}")
        assert resp.status_code == 200, user
        assert resp.mimetype == "image/jpeg"
        assert resp.get_data() == data, "the evidence must not be re-encoded"
    with Image.open(io.BytesIO(resp.get_data())) as img:
        exif = img.getexif()
        assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == TAKEN_LOCAL
        assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert exif[ExifTags.Base.Make] == "YihaoTestCam"


def test_thumbnail_served(as_user, walk, upload) -> None:
    number = walk("in_progress")
    photo = upload("worker", number, exif_jpeg((1600, 1200))).get_json()
    resp = as_user("township").get(f"/photos/{photo['id']}/thumb")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    assert photo["thumb_url"] == f"/api/v1/photos/{photo['id']}/thumb"
    with Image.open(io.BytesIO(resp.get_data())) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= 320 and thumb.size == (320, 240)


def test_same_bytes_twice_is_one_photo(as_user, walk, upload) -> None:
    number = walk("in_progress")
    data = exif_jpeg()
    first = upload("worker", number, data)
    assert first.status_code == 201
    again = upload("worker", number, data)  # the phone resumed an interrupted upload
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(_photo_events(as_user("hotline"), number)) == 1
    other = upload("worker", number, exif_jpeg(colour=(1, 2, 3)))
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    assert len(_photo_events(as_user("hotline"), number)) == 2


def test_same_bytes_on_two_tickets_are_two_photos(as_user, walk, upload) -> None:
    one, two = walk("in_progress"), walk("in_progress")
    data = exif_jpeg()
    a, b = upload("worker", one, data).get_json(), upload("worker", two, data).get_json()
    assert a["id"] != b["id"] and b["duplicate"] is False
    assert as_user("worker").get(f"/photos/{b['id']}").get_data() == data


def test_replayed_upload_with_its_key(as_user, walk, upload) -> None:
    number = walk("in_progress")
    data = exif_jpeg()
    first = upload("worker", number, data, key="photo-1")
    again = upload("worker", number, data, key="photo-1")
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    different = upload("worker", number, exif_jpeg(colour=(9, 9, 9)), key="photo-1")
    assert different.status_code == 422
    assert different.get_json()["code"] == "idempotency_key_reused"
    assert len(_photo_events(as_user("hotline"), number)) == 1


def test_photo_without_exif(walk, upload) -> None:
    number = walk("in_progress")
    photo = upload("worker", number, exif_jpeg(gps=False, taken=None)).get_json()
    assert photo["taken_at"] is None and photo["location"] is None


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_are_accepted(walk, upload, fmt) -> None:
    number = walk("in_progress")
    resp = upload("worker", number, encoded(fmt), filename=f"p.{fmt.lower()}")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["content_type"] == f"image/{fmt.lower()}"


def _bad_files() -> list[Any]:
    jpeg = exif_jpeg()
    return [
        pytest.param(b"this is not a picture at all", 422, "invalid_photo", id="text"),
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", 422, "invalid_photo", id="pdf"),
        pytest.param(b"", 422, "invalid_photo", id="empty"),
        pytest.param(jpeg[: len(jpeg) // 2], 422, "invalid_photo", id="truncated-jpeg"),
        pytest.param(jpeg[:2] + os.urandom(2000), 422, "invalid_photo", id="jpeg-magic-garbage"),
        pytest.param(encoded("GIF"), 422, "unsupported_photo_type", id="gif"),
        pytest.param(encoded("BMP"), 422, "unsupported_photo_type", id="bmp"),
        pytest.param(encoded("TIFF"), 422, "unsupported_photo_type", id="tiff"),
        pytest.param(png_bomb(), 422, "invalid_photo", id="decompression-bomb"),
    ]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("data", "status", "code"), _bad_files())
def test_bad_files_are_refused(as_user, walk, upload, data, status, code) -> None:
    number = walk("in_progress")
    before = as_user("hotline").get(f"/tickets/{number}").get_json()["version"]
    resp = upload("worker", number, data)
    assert resp.status_code == status, resp.get_data()[:300]
    assert resp.get_json()["code"] == code
    assert as_user("hotline").get(f"/tickets/{number}").get_json()["version"] == before


@pytest.mark.parametrize(("size", "code"), [
    (10 * 1024 * 1024 + 1, "photo_too_large"),  # over the photo limit
    (13 * 1024 * 1024, "payload_too_large"),  # over the request limit as well
])
def test_too_large(as_user, walk, upload, size, code) -> None:
    number = walk("in_progress")
    data = exif_jpeg()
    resp = upload("worker", number, data + b"\x00" * (size - len(data)))
    assert resp.status_code == 413, resp.get_data()[:300]
    assert resp.is_json and resp.get_json()["code"] == code
    assert _photo_events(as_user("hotline"), number) == []


def test_no_file_field(as_user, walk, client) -> None:
    number = walk("in_progress")
    resp = client.post(f"/api/v1/tickets/{number}/photos", headers=as_user("worker").headers(),
                       data={"photo": (io.BytesIO(exif_jpeg()), "p.jpg")},
                       content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.get_json()["code"] == "photo_required"
    resp = as_user("worker").post(f"/tickets/{number}/photos", {"file": "base64?"})
    assert resp.status_code == 422 and resp.get_json()["code"] == "photo_required"


def test_out_of_scope_is_404(as_user, walk, upload) -> None:
    number = walk("in_progress")
    photo = upload("worker", number, exif_jpeg()).get_json()
    for user in ("worker3", "county2", "township2", "worker2"):
        resp = upload(user, number, exif_jpeg(colour=(5, 5, 5)))
        assert resp.status_code == 404, (user, resp.get_json())
        assert resp.get_json()["code"] == "ticket_not_found"
        for path in (f"/photos/{photo['id']}", f"/photos/{photo['id']}/thumb"):
            resp = as_user(user).get(path)
            assert resp.status_code == 404 and resp.get_json()["code"] == "photo_not_found"
    assert as_user("worker").get("/photos/no-such-photo").status_code == 404
    assert len(_photo_events(as_user("hotline"), number)) == 1


def test_who_may_add_photos(as_user, walk, upload) -> None:
    number = walk("in_progress")
    for user in ("backup", "township", "admin", "county"):  # they see it but do not hold it
        resp = upload(user, number, exif_jpeg())
        assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden", user
    closed = walk("closed")
    resp = upload("worker", closed, exif_jpeg())
    assert resp.status_code == 409 and resp.get_json()["code"] == "wrong_state"


def test_reporter_of_a_patrol_ticket_may_add_photos(as_user, accept, upload) -> None:
    t = accept(by="worker2", source="patrol")
    assert upload("worker2", t["number"], exif_jpeg()).status_code == 201


def test_reply_with_a_photo_of_another_ticket(as_user, walk, upload) -> None:
    mine, other = walk("on_site"), walk("on_site")
    foreign = upload("worker", other, exif_jpeg()).get_json()["id"]
    own = upload("worker", mine, exif_jpeg(colour=(7, 7, 7))).get_json()["id"]
    before = as_user("hotline").get(f"/tickets/{mine}").get_json()
    resp = as_user("worker").post(f"/tickets/{mine}/reply", {
        "result": "已修好", "resolution": "resolved", "photos": [own, foreign]})
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == "unknown_photo"
    assert resp.get_json()["details"]["photos"] == [foreign]
    assert as_user("hotline").get(f"/tickets/{mine}").get_json() == before
    resp = as_user("worker").post(f"/tickets/{mine}/reply", {
        "result": "已修好", "resolution": "resolved", "photos": [own]})
    assert resp.status_code == 200 and resp.get_json()["event"]["data"]["photos"] == [own]
