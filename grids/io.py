"""Reading polygons from GeoJSON and zipped ESRI Shapefiles; writing GeoJSON.

Each file yields :class:`RawFeature` objects — the feature's number in the file (1-based, as an
administrator counts), its properties with lower-cased keys, and its geometry as GeoJSON or
the reason it could not be read — plus the coordinate system the file declares, if any.

Coordinate systems: a GeoJSON without a ``crs`` member is WGS-84 (RFC 7946); a legacy ``crs``
member naming EPSG:4326, CRS84 or EPSG:4490 (CGCS2000, within centimetres of WGS-84) is
WGS-84; a shapefile's ``.prj`` is read the same way. GCJ-02 and BD-09 have no EPSG code, so
files in them must be declared with ``--crs gcj02|bd09``; a projected system (metres) is
refused with a clear message rather than guessed.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.core.errors import InvalidInput


@dataclass
class RawFeature:
    number: int
    properties: dict[str, Any]
    geometry: dict[str, Any] | None
    problem: str | None = None


@dataclass
class SourceFile:
    features: list[RawFeature]
    #: The CRS the file itself declares ("wgs84"), None when it declares none.
    declared_crs: str | None
    notes: list[str] = field(default_factory=list)


WGS84_NAMES = ("4326", "crs84", "wgs_1984", "wgs84", "wgs 84", "4490", "cgcs2000", "cgcs_2000",
               "china_2000", "china geodetic coordinate system 2000")


def crs_from_name(name: str) -> str | None:
    """"wgs84" for names of WGS-84 (or CGCS2000, the same to a few centimetres), else None."""
    lowered = name.lower()
    return "wgs84" if any(n in lowered for n in WGS84_NAMES) else None


def crs_from_prj(wkt: str) -> str:
    """The coordinate system of a shapefile's ``.prj`` (WKT), or a clear refusal."""
    text = wkt.strip()
    if text.upper().startswith("PROJCS") or text.upper().startswith("PROJCRS"):
        name = re.search(r'PROJC(?:RS|S)\["([^"]*)"', text, re.I)
        raise InvalidInput(
            f"the shapefile is in a projected coordinate system "
            f"({name.group(1) if name else 'unnamed'}); export it in longitude/latitude "
            "(WGS-84, CGCS2000, GCJ-02 or BD-09) and import again", code="unsupported_crs")
    if crs_from_name(text):
        return "wgs84"
    if re.search(r"beijing|1954|xian|1980", text, re.I):
        raise InvalidInput("the shapefile uses Beijing 1954 or Xi'an 1980, which differ from "
                           "WGS-84 by up to 100 m; convert it to CGCS2000 or WGS-84 first",
                           code="unsupported_crs")
    raise InvalidInput(f"unrecognised coordinate system in the .prj ({text[:80]}); declare it "
                       "with --crs wgs84|gcj02|bd09", code="unsupported_crs")


def read_geojson(data: bytes) -> SourceFile:
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"not a GeoJSON file: {exc}", code="invalid_file") from None
    if not isinstance(doc, dict):
        raise InvalidInput("not a GeoJSON file: the top level is not an object",
                           code="invalid_file")
    declared = None
    notes: list[str] = []
    if isinstance(doc.get("crs"), dict):
        name = str((doc["crs"].get("properties") or {}).get("name", ""))
        declared = crs_from_name(name)
        if declared is None:
            raise InvalidInput(f"the GeoJSON declares an unsupported coordinate system {name!r};"
                               " convert it to WGS-84 or declare it with --crs",
                               code="unsupported_crs")
        notes.append(f"the file declares {name}")
    if doc.get("yihao:crs") in ("wgs84", "gcj02", "bd09"):
        # Our own exports in a web map's system say so (RFC 7946 has no crs member).
        declared = doc["yihao:crs"]
        notes.append(f"the file declares yihao:crs {declared}")
    if doc.get("type") == "FeatureCollection":
        items = doc.get("features")
        if not isinstance(items, list):
            raise InvalidInput("a FeatureCollection without a features list", code="invalid_file")
    elif doc.get("type") == "Feature":
        items = [doc]
    else:
        raise InvalidInput("expected a GeoJSON FeatureCollection or Feature", code="invalid_file")
    features = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or item.get("type") != "Feature":
            features.append(RawFeature(number, {}, None, "not a GeoJSON Feature"))
            continue
        props = item.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        geometry = item.get("geometry")
        features.append(RawFeature(number, {str(k).lower(): v for k, v in props.items()},
                                   geometry if isinstance(geometry, dict) else None,
                                   None if isinstance(geometry, dict) else "no geometry"))
    return SourceFile(features, declared, notes)


def _zip_member(names: list[str], suffix: str, stem: str) -> str | None:
    for name in names:
        if name.lower() == f"{stem}{suffix}".lower():
            return name
    return None


def read_shapefile_zip(data: bytes) -> SourceFile:
    import shapefile  # pyshp

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("not a zip file", code="invalid_file") from None
    names = [n for n in archive.namelist() if not n.startswith("__MACOSX/")]
    shps = [n for n in names if n.lower().endswith(".shp")]
    if len(shps) != 1:
        raise InvalidInput(f"the zip must hold exactly one .shp file, it holds {len(shps)}",
                           code="invalid_file")
    stem = shps[0][:-4]
    dbf, shx = _zip_member(names, ".dbf", stem), _zip_member(names, ".shx", stem)
    prj, cpg = _zip_member(names, ".prj", stem), _zip_member(names, ".cpg", stem)
    if dbf is None:
        raise InvalidInput("the zip has no .dbf beside the .shp (the attributes: code, name, "
                           "unit)", code="invalid_file")
    declared = crs_from_prj(archive.read(prj).decode("utf-8", "replace")) if prj else None
    encoding = archive.read(cpg).decode("ascii", "replace").strip() if cpg else "utf-8"
    notes = [f"the .prj declares {declared}"] if declared else []
    return SourceFile(_shape_features(shapefile, archive, shps[0], dbf, shx, encoding),
                      declared, notes)


def _shape_features(shapefile: Any, archive: zipfile.ZipFile, shp: str, dbf: str,
                    shx: str | None, encoding: str) -> list[RawFeature]:
    for enc in dict.fromkeys((encoding, "utf-8", "gb18030")):
        try:
            reader = shapefile.Reader(
                shp=io.BytesIO(archive.read(shp)), dbf=io.BytesIO(archive.read(dbf)),
                shx=io.BytesIO(archive.read(shx)) if shx else None, encoding=enc)
            features = []
            for number, record in enumerate(reader.iterShapeRecords(), start=1):
                props = {k.lower(): v for k, v in record.record.as_dict().items()}
                try:
                    geometry = record.shape.__geo_interface__
                except Exception as exc:  # a broken shape: report it, read the rest
                    features.append(RawFeature(number, props, None, f"unreadable shape: {exc}"))
                    continue
                features.append(RawFeature(number, props, geometry))
            return features
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the .dbf is neither UTF-8 nor GB18030 text", code="bad_encoding")


def read_source(path: Path) -> SourceFile:
    data = path.read_bytes()
    if path.suffix.lower() == ".zip" or data[:4] == b"PK\x03\x04":
        return read_shapefile_zip(data)
    if path.suffix.lower() == ".shp":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for sibling in path.parent.glob(path.stem + ".*"):
                archive.write(sibling, sibling.name)
        return read_shapefile_zip(buffer.getvalue())
    return read_geojson(data)


def text_property(props: dict[str, Any], *names: str) -> str:
    for name in names:
        value = props.get(name)
        if value is not None and str(value).strip():
            text = str(value).strip()
            return text[:-2] if isinstance(value, float) and text.endswith(".0") else text
    return ""
