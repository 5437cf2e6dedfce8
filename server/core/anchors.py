"""Anchors: the audit chain's heads written down outside the database.

The chain catches an altered, removed or reordered event, and the heads catch a removed
newest event — unless the same writer also rewinds the head to the event before, copying
that event's hash. No MAC on the head helps there (an old head with its old MAC is a valid
pair to replay). What does help is a record the database writer cannot reach: every hour
(``yihao audit-anchor``, and the scheduler's ``audit-anchor`` job) the heads that moved since
the last anchor are appended, with an HMAC, to ``YIHAO_HOME/audit/anchors.jsonl``, and the
anchor's digest is sent to external systems as an outbox message (``audit.anchor``).
``yihao audit-verify`` then requires each stream to still reach, with the same hash, the seq
it was anchored at. Production should ship that file (or the webhook's copies) to
write-once storage; what was appended since the last anchor stays as exposed as before.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from flask import current_app, has_app_context

from . import audit
from .db import db, utcnow
from .outbox import queue_message

ANCHOR_FILE = Path("audit") / "anchors.jsonl"


def anchor_path(home: Path | str | None = None) -> Path | None:
    """Where this installation's anchors live (None outside an app with a home)."""
    if home is None:
        if not has_app_context() or not current_app.config.get("YIHAO_HOME"):
            return None
        home = current_app.config["YIHAO_HOME"]
    return Path(home) / ANCHOR_FILE


def _mac(body: bytes) -> str:
    return hmac.new(audit.audit_key(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchored:
    seq: int
    hash: str
    at: str


def read_anchors(path: Path) -> dict[str, Anchored]:
    """The newest anchored head of every stream. A line whose MAC fails is an error: the
    anchor file was edited, which is itself tampering."""
    anchored: dict[str, Anchored] = {}
    if not path.exists():
        return anchored
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            mac = record.pop("mac", "")
            body = json.dumps(record, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":")).encode()
            if not hmac.compare_digest(mac, _mac(body)):
                raise ValueError(f"{path}:{number}: anchor does not match its MAC (edited)")
            for stream, (seq, digest) in record["heads"].items():
                anchored[stream] = Anchored(seq, digest, record["at"])
    return anchored


@dataclass(frozen=True)
class AnchorReport:
    path: Path
    streams: int
    changed: int
    digest: str | None


def write_anchor(path: Path, now: datetime | None = None) -> AnchorReport:
    """Append the heads that moved since the last anchor; queue their digest for the outbox.

    Reads every head (one row per stream: a second or two for a million tickets, hourly),
    so an event committed late with a lower id is never missed, as an id watermark would.
    The file is locked while read and appended, so two schedulers cannot interleave.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            known = read_anchors(path)
            heads = db.session.execute(sa.select(
                audit.EventHead.stream, audit.EventHead.seq, audit.EventHead.hash)).all()
            changed = {h.stream: [h.seq, h.hash] for h in heads
                       if (a := known.get(h.stream)) is None or (a.seq, a.hash) != (h.seq, h.hash)}
            if not changed:
                return AnchorReport(path, len(heads), 0, None)
            record = {"at": (now or utcnow()).isoformat(), "heads": changed}
            body = json.dumps(record, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":")).encode()
            fh.seek(0, 2)
            fh.write(json.dumps({**record, "mac": _mac(body)}, ensure_ascii=False) + "\n")
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    digest = hashlib.sha256(body).hexdigest()
    queue_message("audit.anchor", {"at": record["at"], "streams": len(changed), "sha256": digest})
    return AnchorReport(path, len(heads), len(changed), digest)


def check_anchors(conn: sa.Connection, anchored: dict[str, Anchored],
                  skip: Iterable[str] = ()) -> Iterator[audit.BrokenLink]:
    """Each anchored stream must still reach its anchored seq, with the anchored hash."""
    if not anchored:
        return
    skipped = set(skip)
    events = audit.Event.__table__
    heads = dict(conn.execute(sa.select(audit.EventHead.stream, audit.EventHead.seq)).all())
    names = sorted(s for s in anchored if s not in skipped)
    for i in range(0, len(names), 1000):
        chunk = names[i:i + 1000]
        found = {(r.stream, r.seq): r for r in conn.execute(
            sa.select(events.c.stream, events.c.seq, events.c.id, events.c.hash).where(
                sa.tuple_(events.c.stream, events.c.seq).in_(
                    [(s, anchored[s].seq) for s in chunk])))}
        for stream in chunk:
            a = anchored[stream]
            row = found.get((stream, a.seq))
            if row is None or heads.get(stream, 0) < a.seq:
                yield audit.BrokenLink(
                    stream, a.seq, None,
                    f"anchored at seq {a.seq} on {a.at} but the chain now ends at seq "
                    f"{heads.get(stream, 0)}: newest events removed and the head rewound")
            elif row.hash != a.hash:
                yield audit.BrokenLink(stream, a.seq, row.id,
                                       f"hash differs from the one anchored on {a.at}: replaced")
