"""The grid workers' phone app: an installable PWA served at ``/app/``.

The shell (HTML, CSS, JS, manifest, icons) is static and the same for everyone, so the
service worker can keep it and start the app offline in a fraction of a second; all data
comes from the JSON API under ``/api/v1``. The service worker is served from ``/app/sw.js``
so its scope is ``/app/``; it still sees the page's requests to ``/api/v1`` (a controlled
page's fetches go through its worker whatever their URL).

``VERSION`` is a hash of the static files: any change to them changes the service worker's
bytes, so phones update the cached shell on their next visit. The offline queue lives in
IndexedDB, never in the caches an update replaces.
"""

from __future__ import annotations

import hashlib
import io
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, url_for

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: The app's own files, cached by the service worker at install (order is load order).
SHELL_SCRIPTS = ("messages.js", "store.js", "queue.js", "photo.js", "map.js", "app.js")
SHELL_FILES = ("app.css", *SHELL_SCRIPTS)
#: Push and live notices come from another part of the app; used only when present.
OPTIONAL_SCRIPTS = ("push.js", "live.js")
ICON_SIZES = (192, 512)

bp = Blueprint("pwa", __name__, url_prefix="/app", static_folder="static",
               static_url_path="/static", template_folder="templates")


@cache
def version() -> str:
    """A short hash of every static file and template of the app."""
    digest = hashlib.sha256()
    for path in sorted([*STATIC.rglob("*"), *(HERE / "templates").rglob("*")]):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _optional_scripts() -> list[str]:
    return [name for name in OPTIONAL_SCRIPTS if (STATIC / name).is_file()]


def _asset(name: str) -> str:
    return url_for("pwa.static", filename=name, v=version())


@bp.get("/")
def shell() -> Response:
    """The app shell: no user data in it, so one cached copy serves every start."""
    html = render_template("pwa/app.html", version=version(), asset=_asset,
                           scripts=[*SHELL_SCRIPTS, *_optional_scripts()])
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, its precache list and version written in (a new version, new bytes)."""
    shell_urls = [url_for("pwa.shell"), url_for("pwa.manifest"),
                  *[_asset(name) for name in [*SHELL_FILES, *_optional_scripts()]],
                  *[url_for("pwa.icon", size=size) for size in ICON_SIZES]]
    body = render_template("pwa/sw.js", version=version(), shell_urls=shell_urls,
                           store=_asset("store.js"), queue=_asset("queue.js"),
                           push_sw=_asset("push-sw.js") if (STATIC / "push-sw.js").is_file()
                           else None)
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/app/"
    return response


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    data = {
        "id": url_for("pwa.shell"),
        "name": "一号 · 网格员",
        "short_name": "一号网格",
        "description": "12345 热线网格工单：接单、到场、拍照、反馈，离线也不丢",
        "lang": "zh-Hans",
        "start_url": url_for("pwa.shell") + "?source=pwa",
        "scope": url_for("pwa.shell"),
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": "#0b57d0",
        "icons": [
            *[{"src": url_for("pwa.icon", size=s), "sizes": f"{s}x{s}", "type": "image/png",
               "purpose": "any"} for s in ICON_SIZES],
            {"src": url_for("pwa.icon", size=512, maskable=1), "sizes": "512x512",
             "type": "image/png", "purpose": "maskable"},
        ],
    }
    response = current_app.response_class(
        current_app.json.dumps(data), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/icons/<int:size>.png")
def icon(size: int) -> Response:
    from flask import request

    if size not in ICON_SIZES:
        abort(404)
    png = draw_icon(size, maskable=request.args.get("maskable") == "1")
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@cache
def draw_icon(size: int, *, maskable: bool = False) -> bytes:
    """The app icon, drawn here (no binary in the repository): a 3×3 grid with a map pin.

    A maskable icon keeps everything inside the central 80 % safe zone on a full bleed.
    """
    from PIL import Image, ImageDraw

    blue, white, red = (11, 87, 208), (255, 255, 255), (214, 48, 39)
    img = Image.new("RGB" if maskable else "RGBA", (size, size), blue if maskable else (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    if not maskable:
        draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 5, fill=blue)
    inset = size * (0.24 if maskable else 0.17)
    cell = (size - 2 * inset) / 3
    line = max(2, size // 40)
    for i in range(4):
        offset = inset + i * cell
        draw.line((inset, offset, size - inset, offset), fill=white, width=line)
        draw.line((offset, inset, offset, size - inset), fill=white, width=line)
    # the pin, in the middle cell, pointing down at the grid
    cx, cy, r = size / 2, size / 2 - cell * 0.18, cell * 0.42
    draw.polygon([(cx - r * 0.75, cy + r * 0.45), (cx + r * 0.75, cy + r * 0.45),
                  (cx, cy + r * 1.7)], fill=red)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=red)
    draw.ellipse((cx - r * 0.4, cy - r * 0.4, cx + r * 0.4, cy + r * 0.4), fill=white)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
