"""Loading the collection points into the database: idempotent, and a changed row is updated.

The migration 0003_locations calls `load_points(connection)`; run it again any time with
`python -m functions.location.load` (DATABASE_URL). Each row carries a hash of its content:
re-running inserts nothing new, updates only rows whose content changed, and removes points that
left the data file. Categories are derived here, from data/categories.yaml.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DATA = Path(__file__).parent / "data"
POINTS_FILE = DATA / "collection_points.csv"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")
CHUNK = 100  # rows per INSERT (the progress bar's step)


@dataclass(frozen=True)
class Rules:
    store: tuple[tuple[str, tuple[str, ...]], ...]
    default_store: str
    pickup: tuple[tuple[str, tuple[str, ...]], ...]
    default_pickup: str

    @property
    def store_categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*(c for c, _ in self.store), self.default_store)))

    @property
    def pickup_categories(self) -> tuple[str, ...]:
        return (*(c for c, _ in self.pickup), self.default_pickup)


@functools.cache
def rules() -> Rules:
    from functions.common.datafiles import load_yaml

    raw = load_yaml((DATA / "categories.yaml").read_text(encoding="utf-8"))
    return Rules(
        store=tuple((r["category"], tuple(k.lower() for k in r["keywords"])) for r in raw["store"]),
        default_store=raw["default_store"],
        pickup=tuple((c, tuple(k.lower() for k in ks)) for c, ks in raw["pickup"].items()),
        default_pickup=raw["default_pickup"],
    )


def store_category(name: str, introduction: str, description: str) -> str:
    text = f"{name}\n{introduction}\n{description}".lower()
    for category, keywords in rules().store:
        if any(k in text for k in keywords):
            return category
    return rules().default_store


def pickup_categories(items: str) -> list[str]:
    text = items.lower()
    found = [category for category, keywords in rules().pickup if any(k in text for k in keywords)]
    return found or [rules().default_pickup]


def search_text(*parts: str) -> str:
    """What text search looks in: name and addresses, lower-cased, whitespace collapsed."""
    return " ".join(" ".join(parts).lower().split())


def row_for(source: Mapping[str, str]) -> dict[str, Any]:
    """A data-file row as a table row, categories derived, content hashed."""
    hours = {day: source[f"hours_{day}"] for day in DAYS}
    row: dict[str, Any] = {
        "id": int(source["id"]),
        "source": source["source"],
        "source_pk": source["source_pk"],
        "name": source["name"],
        "road_address": source["road_address"],
        "lot_address": source["lot_address"],
        "place_description": source["place_description"],
        "latitude": float(source["latitude"]) if source["latitude"] else None,
        "longitude": float(source["longitude"]) if source["longitude"] else None,
        "coordinates": source["coordinates"],
        "hours": json.dumps(hours, ensure_ascii=False, sort_keys=True),
        "hours_note": source["hours_note"],
        "phone": source["phone"],
        "place_url": source["place_url"],
        "collection_items": source["collection_items"],
        "introduction": source["introduction"],
        "store_category": store_category(source["name"], source["introduction"], source["place_description"]),
        "pickup_categories": ",".join(pickup_categories(source["collection_items"])),
        "search_text": search_text(source["name"], source["road_address"], source["lot_address"]),
    }
    digest = hashlib.sha256(json.dumps(row, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    row["content_hash"] = digest[:32]
    return row


def read_points(path: Path = POINTS_FILE) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row_for(r) for r in csv.DictReader(fh)]


@dataclass(frozen=True)
class LoadReport:
    inserted: int
    updated: int
    unchanged: int
    removed: int


def load_points(
    connection: Connection, rows: Iterable[dict[str, Any]] | None = None, *, progress: bool | None = None
) -> LoadReport:
    """Upsert `rows` (default: the data file) by id; update only rows whose content hash changed.

    `progress`: a bar of the rows written, on stderr (default: when stderr is a terminal, e.g. the
    migration under `eco2 migrate`)."""
    import sys

    from sqlalchemy import MetaData, Table, delete, select
    from sqlalchemy.exc import SAWarning

    from eco2.tooling.progress import bar

    # the table as it is now in the database (not as store.py describes it): this runs inside
    # migration 0003, whose schema later migrations may extend
    with warnings.catch_warnings():  # SQLAlchemy does not know PostGIS' geography: it is generated anyway
        warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
        points = Table("collection_points", MetaData(), autoload_with=connection)
    columns = set(points.c.keys())
    wanted = {r["id"]: {k: v for k, v in r.items() if k in columns} for r in (read_points() if rows is None else rows)}
    have = {r[0]: r[1] for r in connection.execute(select(points.c.id, points.c.content_hash))}
    new = [r for i, r in wanted.items() if i not in have]
    changed = [r for i, r in wanted.items() if i in have and have[i] != r["content_hash"]]
    gone = [i for i in have if i not in wanted]
    show = sys.stderr.isatty() if progress is None else progress
    with bar(len(new) + len(changed) + len(gone), "collection points", quiet=not show) as advance:
        for start in range(0, len(new), CHUNK):
            connection.execute(points.insert(), new[start : start + CHUNK])
            advance(len(new[start : start + CHUNK]))
        for row in changed:
            connection.execute(points.update().where(points.c.id == row["id"]).values(**row))
            advance(1)
        if gone:
            connection.execute(delete(points).where(points.c.id.in_(gone)))
            advance(len(gone))
    return LoadReport(len(new), len(changed), len(wanted) - len(new) - len(changed), len(gone))


def main() -> int:
    import os

    from sqlalchemy import create_engine

    from eco2.core.db import normalise_url

    engine = create_engine(normalise_url(os.environ["DATABASE_URL"]))
    with engine.begin() as connection:
        report = load_points(connection, progress=True)
    engine.dispose()
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
