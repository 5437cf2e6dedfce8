"""Yihao's own three-level category taxonomy and its routing rules.

The taxonomy is a data file written for Yihao (``routing/data/taxonomy.csv``): codes are
hierarchical digit strings (``01`` → ``0101`` → ``010101``) so a prefix names a subtree —
SLA rules match categories by prefix. Each row carries its keywords (the cold-start prior
and the explanation vocabulary) and its *route*: ``grid`` (goes down to the grid where the
problem is) or the level at which the ticket stops (``township``, ``county``, ``city``). A
row without its own route inherits its parent's.

Level 1 follows the first-level classes common to provincial 12345 platforms (城乡建设,
环境保护, 交通运输, 商贸旅游, 卫生计生, 劳动和社会保障, 教育文体 …), so a message board
labelled with those names maps onto it by name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA_FILE = Path(__file__).parent / "data" / "taxonomy.csv"
ROUTES = ("grid", "village", "township", "county", "city", "province")


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    route: str
    keywords: tuple[str, ...]

    @property
    def level(self) -> int:
        return len(self.code) // 2

    @property
    def parent_code(self) -> str | None:
        return self.code[:-2] or None

    @property
    def level1(self) -> str:
        return self.code[:2]

    @property
    def goes_to_grid(self) -> bool:
        return self.route == "grid"


@dataclass
class Taxonomy:
    categories: dict[str, Category]
    children: dict[str | None, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for code, cat in self.categories.items():
            self.children.setdefault(cat.parent_code, []).append(code)

    def get(self, code: str | None) -> Category | None:
        return self.categories.get(code) if code else None

    def level1(self) -> list[Category]:
        return [self.categories[c] for c in self.children.get(None, [])]

    def by_name(self, name: str) -> Category | None:
        for cat in self.categories.values():
            if cat.name == name:
                return cat
        return None

    def path(self, code: str) -> list[Category]:
        """The category and its ancestors, level 1 first."""
        return [self.categories[code[:i]] for i in range(2, len(code) + 1, 2)
                if code[:i] in self.categories]

    def label(self, code: str | None) -> str | None:
        """"城乡建设 / 市政设施 / 路灯照明" for display."""
        if not code or code not in self.categories:
            return None
        return " / ".join(c.name for c in self.path(code))

    def subtree_keywords(self, code: str) -> dict[str, float]:
        """Keywords of a category and everything below it, weighted: a deeper, longer
        keyword says more than a short general one. Computed once per code."""
        cache = self.__dict__.setdefault("_subtree_cache", {})
        if code not in cache:
            cache[code] = self._subtree_keywords(code)
        return cache[code]

    def _subtree_keywords(self, code: str) -> dict[str, float]:
        weights: dict[str, float] = {}
        for other, cat in self.categories.items():
            if other.startswith(code):
                for kw in cat.keywords:
                    w = (1.0 + 0.25 * (cat.level - 1)) * min(len(kw), 4) / 2
                    weights[kw] = max(weights.get(kw, 0.0), w)
        return weights

    def all_keywords(self) -> set[str]:
        return {kw for cat in self.categories.values() for kw in cat.keywords}


def parse_rows(rows: list[dict[str, str]]) -> Taxonomy:
    """Build a taxonomy from rows (code, name, route, keywords); checks the tree."""
    cats: dict[str, Category] = {}
    for row in rows:
        code = (row.get("code") or "").strip()
        if not code or not code.isdigit() or len(code) % 2 or len(code) > 6:
            raise ValueError(f"bad category code {code!r}")
        parent = code[:-2]
        if parent and parent not in cats:
            raise ValueError(f"category {code} comes before its parent {parent}")
        route = (row.get("route") or "").strip() or (cats[parent].route if parent else "grid")
        if route not in ROUTES:
            raise ValueError(f"category {code}: route {route!r} is not one of {ROUTES}")
        keywords = tuple(dict.fromkeys(k for k in (row.get("keywords") or "").split() if k))
        cats[code] = Category(code=code, name=row["name"].strip(), route=route, keywords=keywords)
    return Taxonomy(cats)


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    with DATA_FILE.open(encoding="utf-8", newline="") as fh:
        return parse_rows(list(csv.DictReader(fh)))
