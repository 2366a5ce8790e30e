"""Build the project's collection-point data file from the shared reference data.

    python -m functions.location.build_data ../shared/reference-data/collection-points.csv.gz

writes functions/location/data/collection_points.csv (and public_holidays.csv): one row per point, in the project's own
shape (stable ids, trimmed text, one phone number, a usable link, weekday hours normalised to
`HH:MM-HH:MM[,HH:MM-HH:MM]`, `closed` or empty when unknown). Categories are not stored here:
they are derived at load time (functions/location/load.py) from data/categories.yaml.

Coordinates: 150 zero-waste shops carry no latitude/longitude, only the map coordinates of the
service they were exported from (`x`, `y`: a Transverse Mercator grid, scaled). The 201 shops that
carry both fit a degree-4 polynomial from (x, y) to (lat, lon); on the 1-in-5 held out during the
fit it is off by 0.15 m median, 0.44 m at worst (printed on every build), so those shops get
derived coordinates and `coordinates=map`. Fourteen points have no usable coordinates (none given,
half a pair, or a latitude outside Korea from a lost leading digit): they stay off the map and out
of the lists (an item without coordinates cannot be placed), and their detail is still served.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

OUT = Path(__file__).parent / "data" / "collection_points.csv"
HOLIDAYS_OUT = Path(__file__).parent / "data" / "public_holidays.csv"
HOLIDAY_YEARS = range(2025, 2036)
COLUMNS = (
    "id",
    "source",
    "source_pk",
    "name",
    "road_address",
    "lot_address",
    "place_description",
    "latitude",
    "longitude",
    "coordinates",
    "hours_mon",
    "hours_tue",
    "hours_wed",
    "hours_thu",
    "hours_fri",
    "hours_sat",
    "hours_sun",
    "hours_holiday",
    "hours_note",
    "phone",
    "place_url",
    "collection_items",
    "introduction",
)
_DAYS = {
    "mon": "monSalsHrExplnCn",
    "tue": "tuesSalsHrExplnCn",
    "wed": "wedSalsHrExplnCn",
    "thu": "thurSalsHrExplnCn",
    "fri": "friSalsHrExplnCn",
    "sat": "satSalsHrExplnCn",
    "sun": "sunSalsHrExplnCn",
    "holiday": "lhldySalsHrExplnCn",
}
_CLOSED = {"휴무", "전체휴무", "계약종료"}
_ALWAYS = {"상시", "00:00~24:00", "00:00 ~ 24:00"}
_RANGE = re.compile(r"(\d{1,2})(?::(\d{2})|시)\s*~\s*(\d{1,2})(?::(\d{2})|시)")
_PARENS = re.compile(r"\(([^()]*)\)")
_PHONE = re.compile(r"(?:0\d{1,2}-)?\d{3,4}-\d{4}")


def normalise_hours(raw: str) -> tuple[str, list[str]]:
    """('09:00-12:00,14:00-17:00' | 'closed' | '', notes) from the source's free text."""
    text = " ".join(raw.split())
    if not text:
        return "", []
    if text in _CLOSED:
        return "closed", []
    if text in _ALWAYS:
        return "00:00-24:00", []
    notes: list[str] = []
    while True:  # peel parentheses from the inside: "(하절기(7~9월) 10시~23시)"
        inner = _PARENS.search(text)
        if inner is None:
            break
        notes.append(" ".join(inner.group(1).split()))
        text = text[: inner.start()] + " " + text[inner.end() :]
    ranges = [f"{int(h1):02d}:{m1 or '00'}-{int(h2):02d}:{m2 or '00'}" for h1, m1, h2, m2 in _RANGE.findall(text)]
    return ",".join(ranges), [n for n in notes if n]


def _phone(row: dict[str, str]) -> str:
    for key in ("rprsTelnoCn", "indivTelnoCn", "bscTelnoCn"):
        found = _PHONE.search(row[key])
        if found:
            return found.group(0)
    return ""


def _link(row: dict[str, str], meta: dict[str, object]) -> str:
    url = row["lnkgHmpgUrlAddr"].strip().split()[0] if row["lnkgHmpgUrlAddr"].strip() else ""
    url = url.rstrip(",")
    if url.startswith("www."):
        url = "https://" + url
    if url.startswith(("http://", "https://")):
        return url
    key = str(meta.get("key") or "")
    if meta.get("favoriteType") == "PLACE" and key.isdigit():
        return f"https://place.map.kakao.com/{key}"
    return ""


def _address(text: str) -> str:
    text = " ".join(text.split())
    return "" if text in ("없음", "-") else text


def _text(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines()).strip()


# -- the map-coordinate fit -------------------------------------------------------------------------
def _features(x: float, y: float, degree: int = 4) -> list[float]:
    return [x**i * y**j for i in range(degree + 1) for j in range(degree + 1 - i)]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Least squares by the normal equations, Gauss-Jordan with partial pivoting (15 unknowns)."""
    n = len(a[0])
    m = [
        [sum(r[i] * r[j] for r in a) for j in range(n)] + [sum(r[i] * v for r, v in zip(a, b, strict=True))]
        for i in range(n)
    ]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [v - f * p for v, p in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


class MapFit:
    """(x, y) of the source's map grid -> (lat, lon), fitted on the points that carry both."""

    def __init__(self, samples: Sequence[tuple[float, float, float, float]]) -> None:
        self.cx = sum(s[0] for s in samples) / len(samples)
        self.cy = sum(s[1] for s in samples) / len(samples)
        rows = [self._f(s[0], s[1]) for s in samples]
        self.lat = _solve(rows, [s[2] for s in samples])
        self.lon = _solve(rows, [s[3] for s in samples])

    def _f(self, x: float, y: float) -> list[float]:
        return _features((x - self.cx) / 1e5, (y - self.cy) / 1e5)

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        f = self._f(x, y)
        return sum(c * v for c, v in zip(self.lat, f, strict=True)), sum(
            c * v for c, v in zip(self.lon, f, strict=True)
        )


def _in_korea(lat: float, lon: float) -> bool:
    return 33.0 <= lat <= 38.7 and 124.5 <= lon <= 132.0


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat1 - lat2) * 111_195
    dx = (lon1 - lon2) * 111_195 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def fit_map_coordinates(samples: list[tuple[float, float, float, float]]) -> tuple[MapFit, list[float]]:
    """The fit on all samples, and the errors (m) of a fit without every fifth sample on those."""
    held = samples[::5]
    trial = MapFit([s for i, s in enumerate(samples) if i % 5])
    errors = [_metres(*trial(x, y), lat, lon) for x, y, lat, lon in held]
    return MapFit(samples), sorted(errors)


# -- the build --------------------------------------------------------------------------------------
def build(source: Path) -> list[dict[str, str]]:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    metas = [json.loads(r["source_metadata"] or "{}") for r in rows]
    samples = [
        (float(m["x"]), float(m["y"]), float(r["positnPstnLat"]), float(r["positnPstnLot"]))
        for r, m in zip(rows, metas, strict=True)
        if r["positnPstnLat"] and m.get("x")
    ]
    fit, errors = fit_map_coordinates(samples)
    print(
        f"map-coordinate fit on {len(samples)} points; held out {len(errors)}: "
        f"median {errors[len(errors) // 2]:.2f} m, max {errors[-1]:.2f} m",
        file=sys.stderr,
    )
    out = []
    for row, meta in zip(rows, metas, strict=True):
        pk = int(row["source_pk"])
        lat, lon, origin = row["positnPstnLat"], row["positnPstnLot"], "source"
        if not lat and meta.get("x") and meta.get("y"):
            flat, flon = fit(float(str(meta["x"])), float(str(meta["y"])))
            lat, lon, origin = f"{flat:.7f}", f"{flon:.7f}", "map"
        if not (lat and lon and _in_korea(float(lat), float(lon))):
            lat, lon, origin = "", "", ""  # e.g. 4.59 °N: a lost leading digit
        hours: dict[str, str] = {}
        notes: list[str] = []
        for day, key in _DAYS.items():
            hours[day], found = normalise_hours(row[key])
            notes += [n for n in found if n not in notes]
        if not hours["holiday"] and row["lhldyDyoffCn"].strip() in _CLOSED:
            hours["holiday"] = "closed"
        out.append(
            {
                "id": str(pk),  # keco serials are 1..409, zero-waste keys are 9 digits: no overlap
                "source": row["source"],
                "source_pk": row["source_pk"],
                "name": " ".join(row["positnNm"].split()),
                "road_address": _address(row["positnRdnmAddr"]),
                "lot_address": _address(row["positnLotnoAddr"]),
                "place_description": _text(row["positnPstnAddExpln"]),
                "latitude": lat,
                "longitude": lon,
                "coordinates": origin,
                **{f"hours_{day}": value for day, value in hours.items()},
                "hours_note": "; ".join(notes),
                "phone": _phone(row),
                "place_url": _link(row, meta),
                "collection_items": _text(row["clctItemCn"]),
                "introduction": _text(row["positnIntdcCn"]),
            }
        )
    ids = [r["id"] for r in out]
    assert len(set(ids)) == len(ids), "ids must be unique"
    return out


def public_holidays(years: range = HOLIDAY_YEARS) -> list[tuple[str, str]]:
    """(ISO date, name) of South Korea's public holidays, lunar ones and substitutes included, from
    the `holidays` package (a build-time tool: at run time the function only reads the file, which
    saves the package's 0.23 s of import and lunar arithmetic on the first request)."""
    from holidays.countries.south_korea import SouthKorea

    calendar = SouthKorea(years=years, language="ko")  # type: ignore[no-untyped-call]
    return sorted((day.isoformat(), str(name)) for day, name in calendar.items())


def main(argv: list[str]) -> int:
    source = Path(argv[1] if len(argv) > 1 else "../shared/reference-data/collection-points.csv.gz")
    rows = build(source)
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} points -> {OUT}", file=sys.stderr)
    days = public_holidays()
    with HOLIDAYS_OUT.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(("date", "name"))
        out.writerows(days)
    print(
        f"{len(days)} public holidays {HOLIDAY_YEARS.start}-{HOLIDAY_YEARS.stop - 1} -> {HOLIDAYS_OUT}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
