"""Same problem, same place, same weeks: find the open tickets a new one repeats.

Text and distance together. Text alone links every "路灯不亮" in the city; distance alone
links a pothole with the noisy neighbour across the street. A pair is a duplicate when its
texts are similar *and* it is near (or, without coordinates, in the same grid or at the
same address) *and* both are recent and the older is still open.

Text similarity is computed on character bigrams of the normalised text (numbers masked),
which is robust to how two callers word the same thing and needs no segmentation: the
larger of the Jaccard index of the whole texts and of the titles, with the overlap
coefficient damped so that a short text inside a long one still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import text as tx

#: Defaults tuned on hand-labelled pairs (bench/routing.py --duplicates); see docs/routing.md.
TEXT_THRESHOLD = 0.30
RADIUS_M = 300.0
WINDOW_DAYS = 30
MAX_CANDIDATES = 300


@dataclass(frozen=True)
class Fingerprint:
    """What comparing needs from one ticket, computed once."""

    title: frozenset[str]
    body: frozenset[str]

    @classmethod
    def of(cls, title: str | None, content: str | None) -> Fingerprint:
        return cls(frozenset(tx.char_shingles(title or "")),
                   frozenset(tx.char_shingles(f"{title or ''}{content or ''}")))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def text_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """0 (nothing shared) … 1 (the same text)."""
    whole = _jaccard(a.body, b.body)
    titles = _jaccard(a.title, b.title)
    contained = _overlap(a.body, b.body) * 0.6
    return round(max(whole, titles * 0.9, contained), 4)


def pair_score(text_score: float, distance_m: float | None, radius_m: float = RADIUS_M) -> float:
    """Text similarity discounted by distance (half at the edge of the radius); unknown
    distance (a same-grid or same-address match) costs a quarter."""
    if distance_m is None:
        return round(text_score * 0.75, 4)
    return round(text_score * (1 - 0.5 * min(distance_m / radius_m, 1.0)), 4)


def is_duplicate(text_score: float, distance_m: float | None, *,
                 threshold: float = TEXT_THRESHOLD, radius_m: float = RADIUS_M,
                 same_place: bool = False) -> bool:
    if distance_m is not None and distance_m > radius_m:
        return False
    if distance_m is None and not same_place:
        return False
    return text_score >= threshold


@dataclass
class Candidate:
    ticket_id: int
    number: str | None
    text_score: float
    distance_m: float | None
    score: float


def find_duplicates(*, ticket_id: int, title: str, content: str, lng: float | None,
                    lat: float | None, grid_id: int | None, address: str | None,
                    accepted_at: datetime, limit: int = 5,
                    threshold: float = TEXT_THRESHOLD, radius_m: float = RADIUS_M,
                    window_days: int = WINDOW_DAYS) -> list[Candidate]:
    """Open tickets accepted within ``window_days`` before ``accepted_at`` that report the
    same problem at the same place, best first. One indexed query, bounded in rows."""
    import sqlalchemy as sa

    from grids.crs import haversine_m
    from server.core.db import db
    from server.tickets.models import OPEN_STATUSES, Ticket

    since = accepted_at - timedelta(days=window_days)
    query = sa.select(Ticket.id, Ticket.number, Ticket.title, Ticket.content, Ticket.lng,
                      Ticket.lat, Ticket.grid_id, Ticket.address).where(
        Ticket.id != ticket_id, Ticket.status.in_([str(s) for s in OPEN_STATUSES]),
        Ticket.accepted_at >= since, Ticket.accepted_at <= accepted_at,
        Ticket.duplicate_of_id.is_(None),
    )
    where: list[Any] = []
    if lng is not None and lat is not None:
        dlat = radius_m / 111_000
        dlng = radius_m / (111_000 * max(0.2, _cos_deg(lat)))
        where.append(sa.and_(Ticket.lat.between(lat - dlat, lat + dlat),
                             Ticket.lng.between(lng - dlng, lng + dlng)))
    if grid_id is not None:
        where.append(sa.and_(Ticket.grid_id == grid_id, Ticket.lng.is_(None)))
    if address:
        where.append(Ticket.address == address)
    if not where:
        return []
    rows = db.session.execute(
        query.where(sa.or_(*where)).order_by(Ticket.id.desc()).limit(MAX_CANDIDATES)).all()
    mine = Fingerprint.of(title, content)
    found: list[Candidate] = []
    for row in rows:
        distance = None
        if None not in (lng, lat, row.lng, row.lat):
            distance = haversine_m(lng, lat, row.lng, row.lat)
        same_place = (address is not None and row.address == address) or (
            grid_id is not None and row.grid_id == grid_id)
        score_text = text_similarity(mine, Fingerprint.of(row.title, row.content))
        if is_duplicate(score_text, distance, threshold=threshold, radius_m=radius_m,
                        same_place=same_place):
            found.append(Candidate(row.id, row.number, score_text,
                                   None if distance is None else round(distance, 1),
                                   pair_score(score_text, distance, radius_m)))
    found.sort(key=lambda c: -c.score)
    return found[:limit]


def _cos_deg(lat: float) -> float:
    import math

    return math.cos(math.radians(lat))
