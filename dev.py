#!/usr/bin/env python3
"""The one entry point for people and CI: ``python3 dev.py demo`` and ``python3 dev.py test``.

Standard library only, so it runs on a fresh machine that has nothing but Python: it makes the
project's virtual environment (``.venv``) itself, installs the project into it, and then runs
the real commands from there. CI runs exactly what a developer runs (``.ci/run`` is one line
calling ``python3 dev.py test``), so a green local run means a green CI run.

``demo``  install the project, then ``exec`` ``.venv/bin/yihao demo [--host H --port P ...]``.
``test``  install the project with its test extra; make sure PostgreSQL (with PostGIS) and
          Debian's Chromium are there and running (installing them with apt-get when running as
          root on Debian); ``ruff check .``; pytest on the embedded default (SQLite), then on
          PostgreSQL; a summary; a non-zero exit if anything failed. Extra arguments go to pytest
          (``python3 dev.py test -k flow``).

Outside CI a laptop without apt-get (or without root) still gets the SQLite run: the
PostgreSQL pass and the browser tests are skipped with a loud message. With ``CI=true``
everything is required, and a missing piece fails the run.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".yihao-install.json"
MIN_PYTHON = (3, 11)
DEFAULT_TEST_DB = "postgresql://postgres@127.0.0.1:5432/yihao_test"
CHROMIUM = os.environ.get("YIHAO_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# ---------------------------------------------------------------- output


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def loud(message: str) -> None:
    """A warning nobody scrolls past: something the developer expected did not run."""
    bar = "!" * 78
    print(f"\n{bar}\n!! " + message.replace("\n", "\n!! ") + f"\n{bar}", flush=True)


def run(cmd: list[str], **kwargs: object) -> int:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, **kwargs)  # type: ignore[call-overload, no-any-return]


# ---------------------------------------------------------------- the virtual environment


def _python_for_venv() -> str:
    """This interpreter when it is new enough, else a newer ``python3.X`` on PATH."""
    if sys.version_info >= MIN_PYTHON:
        return sys.executable
    for name in ("python3.13", "python3.12", "python3.11"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit(f"Yihao needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is "
             f"{sys.version.split()[0]} and no python3.11+ is on PATH.")


def _venv_works() -> bool:
    python = BIN / "python"
    if not python.exists():
        return False
    return subprocess.call([str(python), "-c", "import sys; assert sys.version_info >= (3, 11)"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def _fingerprint() -> str:
    """What the install depends on: reinstall when the project's metadata changes."""
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv(extras: list[str]) -> None:
    """Create ``.venv`` if needed and install the project (editable) with these extras.

    Skipped when the stamp says the same ``pyproject.toml`` was already installed with at
    least these extras, so a second ``dev.py demo`` starts at once.
    """
    started = time.monotonic()
    if not _venv_works():
        say(f"creating the virtual environment {VENV.relative_to(ROOT)}")
        code = run([_python_for_venv(), "-m", "venv", "--clear", str(VENV)])
        if code != 0:
            sys.exit("could not create .venv (on Debian: apt-get install python3-venv)")
    wanted = set(extras)
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        stamp = {}
    if (stamp.get("fingerprint") == _fingerprint() and wanted <= set(stamp.get("extras", []))
            and (BIN / "yihao").exists()):
        return
    installed = wanted | (set(stamp.get("extras", []))
                          if stamp.get("fingerprint") == _fingerprint() else set())
    target = "." + (f"[{','.join(sorted(installed))}]" if installed else "")
    say(f"installing the project into .venv: pip install -e '{target}'")
    code = run([str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                "--progress-bar", "off", "-e", target], cwd=ROOT)
    if code != 0:
        sys.exit(f"pip install -e '{target}' failed (exit {code})")
    STAMP.write_text(json.dumps({"fingerprint": _fingerprint(), "extras": sorted(installed)}))
    print(f"installed in {time.monotonic() - started:.0f}s", flush=True)


# ---------------------------------------------------------------- demo


def cmd_demo(args: list[str]) -> None:
    ensure_venv([])
    yihao = str(BIN / "yihao")
    argv = [yihao, "demo", *args]
    say("starting the demo: " + " ".join(["yihao", "demo", *args]))
    sys.stdout.flush()
    if os.name == "nt":  # no real exec there: wait and pass the exit code on
        sys.exit(subprocess.call(argv))
    os.execv(yihao, argv)


# ---------------------------------------------------------------- test: system services


class Step:
    """One line of the summary."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "ok"  # ok | FAIL | skip
        self.note = ""
        self.seconds = 0.0
        self._t0 = time.monotonic()

    def done(self, status: str = "ok", note: str = "") -> Step:
        self.status, self.note = status, note
        self.seconds = time.monotonic() - self._t0
        return self


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return True
        time.sleep(0.5)
    return _port_open(host, port)


def _pg_version() -> str:
    """The installed PostgreSQL major version (Debian keeps one folder per cluster version)."""
    versions = sorted((p.name for p in Path("/etc/postgresql").glob("*") if p.name.isdigit()),
                      key=int)
    return versions[-1] if versions else "15"


def _has_postgis(version: str) -> bool:
    return bool(glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"))


def _has_cjk_font() -> bool:
    """Without a Chinese font every screenshot is a row of boxes (and text widths are wrong)."""
    if not shutil.which("fc-list"):
        return False
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def ensure_system_packages() -> Step:
    """apt-get install what the PostgreSQL pass and the browser tests need, if missing."""
    step = Step("system packages (PostGIS, Chromium)")
    version = _pg_version()
    missing = []
    if not _has_postgis(version):
        missing.append(f"postgresql-{version}-postgis-3")
    if not Path(CHROMIUM).exists():
        missing.append("chromium")
    if not _has_cjk_font():
        missing.append("fonts-wqy-microhei")
    if not missing:
        return step.done("ok", "already installed")
    apt = shutil.which("apt-get")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not (apt and is_root):
        why = "apt-get is not available" if not apt else "not running as root"
        loud(f"missing: {' '.join(missing)} ({why}).\n"
             "Install them yourself to run the PostgreSQL pass and the browser tests, e.g.\n"
             f"  sudo apt-get install {' '.join(missing)}")
        return step.done("FAIL" if IN_CI else "skip", "missing: " + " ".join(missing))
    say("installing " + " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if run([apt, "update", "-q"], env=env) != 0 or \
            run([apt, "install", "-y", "-q", *missing], env=env) != 0:
        loud("apt-get could not install " + " ".join(missing))
        return step.done("FAIL" if IN_CI else "skip", "apt-get failed")
    return step.done("ok", "installed " + " ".join(missing))


def test_database_url() -> str:
    return os.environ.get("YIHAO_TEST_DATABASE_URL") or DEFAULT_TEST_DB


_PG_SETUP = """
import sys, psycopg
url, name = sys.argv[1], sys.argv[2]
with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    print("PostGIS", conn.execute("SELECT postgis_lib_version()").fetchone()[0])
"""


def ensure_postgres() -> Step:
    """PostgreSQL answering, the test database there, PostGIS usable in it."""
    url = test_database_url()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    name = parts.path.lstrip("/") or "yihao_test"
    step = Step(f"postgresql {host}:{port}/{name}")
    if not _port_open(host, port) and shutil.which("pg_ctlcluster"):
        version = _pg_version()
        say(f"PostgreSQL is not answering on {host}:{port}; starting cluster {version}/main")
        run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
        _wait_port(host, port, 30)
    if not _port_open(host, port):
        loud(f"PostgreSQL is not answering on {host}:{port}: the PostgreSQL pass cannot run.\n"
             "Start it, or point YIHAO_TEST_DATABASE_URL at one.")
        return step.done("FAIL" if IN_CI else "skip", "not answering")
    plain = urlunsplit(("postgresql", parts.netloc, "/" + name, "", ""))
    out = subprocess.run([str(BIN / "python"), "-c", _PG_SETUP, plain, name],
                         capture_output=True, text=True)
    if out.returncode != 0:
        loud("could not prepare the test database (is PostGIS installed?):\n"
             + (out.stderr.strip().splitlines() or ["?"])[-1])
        return step.done("FAIL" if IN_CI else "skip", "no database or no PostGIS")
    return step.done("ok", out.stdout.strip())


def ensure_redis() -> None:
    """Start the machine's Redis if it is installed but stopped (tests that need one use it)."""
    if _port_open("127.0.0.1", 6379) or not shutil.which("redis-server"):
        return
    say("Redis is not answering on 127.0.0.1:6379; starting it")
    Path("/tmp/yihao-redis").mkdir(exist_ok=True)
    run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
         "--save", "", "--appendonly", "no", "--dir", "/tmp/yihao-redis"])
    _wait_port("127.0.0.1", 6379, 10)


# ---------------------------------------------------------------- test: the runs


class Counts:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0

    def add(self, other: Counts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


# pytest's closing line, e.g. "==== 2 failed, 410 passed, 4 skipped, 3 subtests passed in 9.1s
# ====" (no "=" padding under -q). Subtests are not tests: they are left out of the counts.
_SUMMARY = re.compile(r"^=* ?(?P<body>(\d+ [a-z]+|no tests ran)[^=]*?) in [0-9.]+s( \(.*\))? ?=*$")
_PART = re.compile(r"(\d+) (subtests? )?([a-z]+)")


def _parse_summary(line: str) -> Counts | None:
    match = _SUMMARY.match(line.strip())
    if not match:
        return None
    counts = Counts()
    for number, subtest, word in _PART.findall(match.group("body")):
        if subtest:
            continue
        n = int(number)
        if word in ("passed", "xpassed"):  # a non-strict xpass does not fail the run
            counts.passed += n
        elif word in ("failed", "error", "errors"):
            counts.failed += n
        elif word in ("skipped", "xfailed"):
            counts.skipped += n
    return counts


def run_pytest(label: str, extra: list[str], database_url: str | None,
               total: Counts) -> Step:
    """Run pytest once, streaming its output and reading its own closing line for the counts."""
    step = Step(f"pytest ({label})")
    env = dict(os.environ)
    env.pop("YIHAO_TEST_DATABASE_URL", None)
    if database_url:
        env["YIHAO_TEST_DATABASE_URL"] = database_url
    say(f"pytest on {label}")
    # --durations: the slowest tests are named in every run, so CI time stays watched.
    cmd = [str(BIN / "python"), "-m", "pytest", "--durations=10", *extra]
    if sys.stdout.isatty():
        cmd.insert(3, "--color=yes")
    print("$ " + " ".join(cmd), flush=True)
    counts = None
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                          errors="replace", bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            parsed = _parse_summary(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if parsed is not None:
                counts = parsed
        code = proc.wait()
    sys.stdout.flush()
    if counts:
        total.add(counts)
    note = str(counts) if counts else "no summary line"
    if code == 0:
        return step.done("ok", note)
    if code == 5:
        return step.done("FAIL", "no tests collected (pytest exit 5)")
    return step.done("FAIL", f"{note} (pytest exit {code})")


def cmd_test(extra: list[str]) -> int:
    started = time.monotonic()
    steps: list[Step] = []
    total = Counts()

    install = Step("venv + pip install -e '.[test]'")
    ensure_venv(["test"])
    steps.append(install.done())

    packages = ensure_system_packages()
    steps.append(packages)
    pg = ensure_postgres()
    steps.append(pg)
    ensure_redis()
    if not Path(CHROMIUM).exists():
        loud(f"{CHROMIUM} is missing: the browser tests will "
             + ("FAIL (CI=true)" if IN_CI else "be skipped"))

    say("ruff check .")
    ruff = Step("ruff check .")
    code = run([str(BIN / "ruff"), "check", "."], cwd=ROOT)
    steps.append(ruff.done("ok" if code == 0 else "FAIL", "" if code == 0 else f"exit {code}"))

    steps.append(run_pytest("SQLite, the embedded default", extra, None, total))
    if pg.status == "ok":
        steps.append(run_pytest("PostgreSQL + PostGIS", extra, test_database_url(), total))
    else:
        skipped = Step("pytest (PostgreSQL + PostGIS)")
        steps.append(skipped.done("FAIL" if IN_CI else "skip", "PostgreSQL unavailable"))
        loud("the PostgreSQL pass did NOT run: only the SQLite results below count.")

    width = max(len(s.name) for s in steps)
    print("\n" + "=" * 30 + " dev.py test summary " + "=" * 30)
    for s in steps:
        print(f"  {s.status:<4}  {s.name:<{width}}  {s.seconds:7.1f}s  {s.note}")
    failed = [s.name for s in steps if s.status == "FAIL"]
    print(f"  total time {time.monotonic() - started:.0f}s; "
          + ("FAILED: " + "; ".join(failed) if failed else "all steps passed"))
    print(f"total: {total}", flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------- main


USAGE = """usage:
  python3 dev.py demo [--host H] [--port P] [...]   seed the Liaoning demo and serve it
  python3 dev.py test [pytest args...]              lint and run every test (SQLite, PostgreSQL)
"""


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        cmd_demo(rest)
        return 0
    if command == "test":
        return cmd_test(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
