"""Address → division (and, through the gazetteer, a point): without scanning units per call.

Every active unit's name, and the short forms people actually write (沈阳 for 沈阳市, 和平 for
和平区, 浑河湾 for 浑河湾街道, 岫岩县 for 岫岩满族自治县 …), together with every gazetteer entry
and its aliases, go into one dictionary keyed by the name, built once per process and rebuilt
when the ``units`` or ``gazetteer`` token changes. Reading an address is then a scan over its
characters with a dictionary lookup per candidate length (the lengths that occur for names
starting with that character) — microseconds, whatever the number of units.

Choosing among the names found:

* a name inside a longer name found at the same place is dropped (和平 inside 和平街道);
* a short form directly followed by a road or building word is discounted (和平大街 is a
  street, not 和平区);
* each candidate unit scores its own weight plus the weights of its ancestors that the address
  also names, minus half the weight of names that contradict it (a township of another
  county); the best score wins, a tie between unrelated units resolves to their deepest common
  ancestor (新华街道 exists in five counties: without the county, only the city is certain);
* a candidate needs evidence of its own (a weight of at least 1), so a discounted street name
  never decides alone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import sqlalchemy as sa

from hierarchy.models import Level, Unit
from server.core.db import db

from .boundaries import warm_up
from .models import GazetteerEntry
from .spatial import TokenCache

ETHNIC = (r"(?:满|蒙古|朝鲜|锡伯|回|壮|苗|土家|藏|维吾尔|彝|瑶|侗|白|哈尼|黎|傣|畲|仡佬|"
          r"羌|土|佤|水|纳西|布依|达斡尔|鄂温克|鄂伦春|赫哲|柯尔克孜|哈萨克|蒙)族")
REVOKED = re.compile(r"[（(]撤销[）)]$")
#: Words that, right after a place's short name, make it a street or a building.
STREET_WORDS = ("路", "街", "大街", "大路", "道", "巷", "胡同", "里", "桥", "广场", "公园", "小区",
                "花园", "大厦", "中学", "小学", "医院", "市场", "商场", "机场")
#: Abbreviations that no suffix rule produces.
ABBREVIATIONS = {
    "喀喇沁左翼蒙古族自治县": ("喀左", "喀左县"),
    "阜新蒙古族自治县": ("阜蒙", "阜蒙县", "阜新县"),
    "沈北新区": ("沈北",),
}

FULL = 3.0
FULL_UPPER = 2.0  # province and city: true but not very telling
SHORT_LONG = 2.0  # short forms of three or more characters
SHORT = 1.5
STREET_FACTOR = 0.2
REVOKED_FACTOR = 0.5
MIN_OWN_WEIGHT = 1.0


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), no whitespace: what both the index and scans see."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def name_variants(name: str, level: Level) -> list[tuple[str, float]]:
    """The full name and the short forms of one unit, with their weights."""
    revoked = bool(REVOKED.search(name))
    base_name = REVOKED.sub("", name).strip()
    upper = level in (Level.province, Level.city)
    out: dict[str, float] = {normalise(base_name): FULL_UPPER if upper else FULL}

    def short(form: str) -> None:
        form = normalise(form)
        if len(form) >= 2 and form not in out:
            out[form] = (SHORT if upper else SHORT_LONG if len(form) >= 3 else SHORT)

    for form in ABBREVIATIONS.get(base_name, ()):
        short(form)
    if level is Level.province:
        short(re.sub(rf"(?:{ETHNIC})*(?:省|市|自治区|特别行政区)$", "", base_name))
    elif level is Level.city:
        short(re.sub(rf"(?:{ETHNIC})*(?:市|地区|盟|自治州)$", "", base_name))
    elif level is Level.county:
        if m := re.match(rf"^(.+?)(?:{ETHNIC})+自治(县|旗)$", base_name):
            short(m.group(1))
            short(m.group(1) + m.group(2))
        elif base_name.endswith("新区"):
            short(base_name[:-2])
        else:
            short(re.sub(r"(?:区|县|市|旗)$", "", base_name))
    elif level is Level.township:
        if m := re.match(rf"^(.+?)(?:{ETHNIC})+(乡|镇)$", base_name):
            short(m.group(1) + m.group(2))
            short(m.group(1))
        elif base_name.endswith("民族乡"):
            short(base_name[:-3] + "乡")
            short(base_name[:-3])
        else:
            short(re.sub(r"(?:街道办事处|街道|办事处|镇|乡)$", "", base_name))
    if revoked:
        out = {k: v * REVOKED_FACTOR for k, v in out.items()}
    return list(out.items())


@dataclass(frozen=True)
class UnitInfo:
    id: int
    code: str
    name: str
    level: str
    depth: int
    path: str
    region_code: str | None
    #: Strict ancestors, root first.
    ancestors: tuple[int, ...]


@dataclass(frozen=True)
class Entry:
    """What one name in the index stands for."""

    unit_id: int
    weight: float
    short: bool
    gazetteer_id: int | None = None
    point: tuple[float, float] | None = None


@dataclass(frozen=True)
class Mention:
    text: str
    start: int
    end: int
    entry: Entry
    weight: float


@dataclass
class AddressMatch:
    """The unit an address names (None when it names nothing usable) and how sure we are."""

    unit_id: int | None
    confidence: float
    reason: str
    #: A point from the gazetteer, when the deciding name is a place with coordinates.
    point: tuple[float, float] | None = None
    mentions: list[Mention] = field(default_factory=list)


class NameIndex:
    def __init__(self, units: list[UnitInfo], entries: list[tuple[str, Entry]]) -> None:
        self.units = {u.id: u for u in units}
        self.names: dict[str, list[Entry]] = {}
        for name, entry in entries:
            self.names.setdefault(name, []).append(entry)
        lengths: dict[str, set[int]] = {}
        for name in self.names:
            lengths.setdefault(name[0], set()).add(len(name))
        self.lengths = {ch: sorted(ls, reverse=True) for ch, ls in lengths.items()}
        self.by_name: dict[str, list[int]] = {}
        self.by_code: dict[str, list[int]] = {}
        self.children: dict[int, list[int]] = {}
        self.full_names = {u.id: normalise(REVOKED.sub("", u.name)) for u in units}
        #: Two-digit prefixes of the provinces present (whose real boundaries to load).
        self.province_prefixes = tuple(sorted({u.code[:2] for u in units
                                               if u.level == Level.province and u.code.isdigit()}))
        for u in units:
            if u.ancestors:
                self.children.setdefault(u.ancestors[-1], []).append(u.id)
            self.by_name.setdefault(u.name, []).append(u.id)
            self.by_code.setdefault(u.code, []).append(u.id)

    # -- finding names

    def scan(self, text: str) -> list[Mention]:
        """Every indexed name in ``text`` (already normalised), nested ones dropped."""
        found: list[Mention] = []
        n = len(text)
        for i, ch in enumerate(text):
            for length in self.lengths.get(ch, ()):
                if i + length > n:
                    continue
                word = text[i:i + length]
                entries = self.names.get(word)
                if not entries:
                    continue
                after = text[i + length:i + length + 2]
                for entry in entries:
                    weight = entry.weight
                    if entry.short and after.startswith(STREET_WORDS):
                        weight *= STREET_FACTOR
                    found.append(Mention(word, i, i + length, entry, weight))
        return [m for m in found if not any(
            o.start <= m.start and m.end <= o.end and (o.end - o.start) > (m.end - m.start)
            for o in found)]

    # -- choosing

    def _related(self, a: int, b: int) -> bool:
        return a == b or a in self.units[b].ancestors or b in self.units[a].ancestors

    def common_ancestor(self, ids: list[int]) -> int | None:
        chains = [(*self.units[i].ancestors, i) for i in ids]
        common = None
        for level in zip(*chains, strict=False):
            if all(x == level[0] for x in level):
                common = level[0]
            else:
                break
        return common

    def resolve(self, address: str, within: UnitInfo | None = None) -> AddressMatch:
        text = normalise(address)
        mentions = self.scan(text)
        if within is not None:
            allowed = set(within.ancestors) | {within.id}
            mentions = [m for m in mentions if m.entry.unit_id in allowed
                        or within.id in self.units[m.entry.unit_id].ancestors]
        if not mentions:
            return AddressMatch(None, 0.0, "address names no known division or place")
        weight: dict[int, float] = {}
        best_mention: dict[int, Mention] = {}
        for m in mentions:
            uid = m.entry.unit_id
            better_point = m.weight == weight.get(uid) and m.entry.point is not None \
                and best_mention[uid].entry.point is None
            if m.weight > weight.get(uid, 0.0) or better_point:
                weight[uid] = m.weight
                best_mention[uid] = m
        spans: dict[tuple[int, int], list[Mention]] = {}
        by_unit: dict[int, list[Mention]] = {}
        for m in mentions:
            spans.setdefault((m.start, m.end), []).append(m)
            by_unit.setdefault(m.entry.unit_id, []).append(m)
        scores: dict[int, float] = {}
        support_of: dict[int, int] = {}
        conflict_of: dict[int, float] = {}
        for uid, own in weight.items():
            if own < MIN_OWN_WEIGHT:
                continue
            scores[uid], support_of[uid], conflict_of[uid] = self._score(
                uid, best_mention[uid], by_unit, spans)
        if not scores:
            return AddressMatch(None, 0.0, "address names only streets or places we cannot "
                                "place", mentions=mentions)
        top = max(scores.values())
        tied = sorted(uid for uid, s in scores.items() if top - s < 1e-9)
        deepest = max(tied, key=lambda uid: self.units[uid].depth)
        chain = all(t == deepest or t in self.units[deepest].ancestors for t in tied)
        if len(tied) == 1 or chain:
            chosen = deepest
            info = self.units[chosen]
            if within is not None and chosen in within.ancestors:
                return AddressMatch(None, 0.1, f"address names only {info.name}, above "
                                    f"{within.name}", mentions=mentions)
            contradicted = conflict_of[chosen] > 0
            confidence = min(0.75, 0.5 + 0.1 * support_of[chosen]) - (0.1 if contradicted else 0)
            m = best_mention[chosen]
            via = "the gazetteer entry" if m.entry.gazetteer_id else "the name"
            reason = f"address resolved to {info.name} by {via} {m.text}"
            if contradicted:
                reason += " (it also names places elsewhere)"
            point = m.entry.point if m.entry.gazetteer_id else None
            if point is None and info.level in (Level.county, Level.township):
                child = self.misspelt_child(text, chosen)
                if child is not None:
                    uid, written = child
                    return AddressMatch(uid, round(max(0.3, confidence - 0.15), 2),
                                        f"{reason}; {written} read as {self.units[uid].name} "
                                        "(one character differs)", None, mentions)
            return AddressMatch(chosen, round(confidence, 2), reason, point, mentions)
        common = self.common_ancestor(tied)
        names = "、".join(f"{self.units[t].name}（{self.unit_chain(t)}）" for t in tied[:4])
        if common is None:
            return AddressMatch(None, 0.1, f"address is ambiguous: {names}", mentions=mentions)
        if within is not None and common in within.ancestors:
            return AddressMatch(None, 0.1, f"address is ambiguous: {names}", mentions=mentions)
        return AddressMatch(common, 0.3, f"address is ambiguous between {names}; resolved to "
                            f"{self.units[common].name}", mentions=mentions)

    def _score(self, uid: int, own: Mention, by_unit: dict[int, list[Mention]],
               spans: dict[tuple[int, int], list[Mention]]) -> tuple[float, int, float]:
        """(score, ancestors that support it, weight of what contradicts it) for one reading.

        One piece of text is read once: 北镇 in “锦州北镇赵屯” is the county 北镇市 *or* its
        北镇街道, so once it supports the county it is not also a rival township; seven
        站前街道 at the same place are alternative readings, not seven contradictions. A piece
        of text contradicts a candidate only when no reading of it is related to it.
        """
        used = {(own.start, own.end)}
        support = 0.0
        supporters = 0
        for ancestor in self.units[uid].ancestors:
            options = [m for m in by_unit.get(ancestor, ()) if (m.start, m.end) not in used]
            if options:
                best = max(options, key=lambda m: m.weight)
                support += best.weight
                supporters += 1
                used.add((best.start, best.end))
        conflict = 0.0
        for span, readings in spans.items():
            if span in used or any(self._related(uid, m.entry.unit_id) for m in readings):
                continue
            conflict += max(m.weight for m in readings)
        return own.weight + support - 0.5 * conflict, supporters, conflict

    def misspelt_child(self, text: str, parent: int) -> tuple[int, str] | None:
        """A unit directly under ``parent`` whose full name appears in ``text`` with exactly
        one character wrong, not its last (浑河弯街道 → 浑河湾街道, 冬汤镇 → 东汤镇): call takers
        type by sound. Names of three characters only with a one-character suffix (镇, 乡);
        and only when exactly one child fits, so it never guesses."""
        found: dict[int, str] = {}
        for uid in self.children.get(parent, ()):
            name = self.full_names[uid]
            n = len(name)
            if n < 3 or (n == 3 and name[-1] not in "镇乡"):
                continue
            for i in range(len(text) - n + 1):
                window = text[i:i + n]
                if window[-1] != name[-1]:
                    continue
                if sum(a != b for a, b in zip(window, name, strict=True)) == 1:
                    found[uid] = window
                    break
        return next(iter(found.items())) if len(found) == 1 else None

    def unit_chain(self, uid: int) -> str:
        info = self.units[uid]
        names = [self.units[a].name for a in info.ancestors if self.units[a].depth >= 2]
        return "".join(names[-2:]) or info.name

    def units_named(self, name: str) -> list[int]:
        return self.by_name.get(name, [])


def load_name_index() -> NameIndex:
    depth = {str(lv): lv.depth for lv in Level}
    rows = db.session.execute(
        sa.select(Unit.id, Unit.code, Unit.name, Unit.level, Unit.path, Unit.region_code)
        .where(Unit.active.is_(True))
    ).all()
    units = []
    entries: list[tuple[str, Entry]] = []
    for uid, code, name, level, path, region_code in rows:
        ancestors = tuple(int(p) for p in path.strip("/").split("/") if p and int(p) != uid)
        units.append(UnitInfo(uid, code, name, str(level), depth.get(str(level), 0), path,
                              region_code, ancestors))
        try:
            lv = Level(level)
        except ValueError:
            continue
        full = normalise(REVOKED.sub("", name))
        for form, weight in name_variants(name, lv):
            entries.append((form, Entry(uid, weight, short=form != full)))
    known = {u.id for u in units}
    for gid, gname, aliases, unit_id, lng, lat in db.session.execute(
        sa.select(GazetteerEntry.id, GazetteerEntry.name, GazetteerEntry.aliases,
                  GazetteerEntry.unit_id, GazetteerEntry.lng, GazetteerEntry.lat)
        .where(GazetteerEntry.active.is_(True))
    ):
        if unit_id not in known:
            continue
        point = (lng, lat) if lng is not None and lat is not None else None
        for form in {normalise(gname), *(normalise(a) for a in aliases or [])}:
            if len(form) >= 2:
                entries.append((form, Entry(unit_id, FULL, short=False, gazetteer_id=gid,
                                            point=point)))
    index = NameIndex(units, entries)
    warm_up(index.province_prefixes)
    return index


name_indexes = TokenCache(load_name_index)


def name_index(tokens: dict[str, str]) -> NameIndex:
    return name_indexes.get((tokens.get("units"), tokens.get("gazetteer")))
