"""The collection points in the database: nearby candidates, text matches, one point.

Why PostGIS (measured by tests/benchmarks/bench_location.py on 1,000,000 points; figures in
tests/benchmarks/README.md): a `geography` point with a GiST index answers `ST_DWithin` from the
index, spheres and all, and orders by true great-circle distance; it is the field's standard,
Debian packages it, and the same column serves later needs (polygons, KNN). cube/earthdistance
with a GiST index on `ll_to_earth` is also index-backed and was measured in the same benchmark
runs: slower at every zoom (`--quick`, 100,000 points, p50: zoom 10 4.5-13 ms against 1.3-2.2 ms,
zoom 5 40-140 ms against 1.2-3.8 ms), because its `earth_box` is a cube around the circle (more rows
to recheck) and it has no KNN order; it also fixes the earth radius itself, and needs two
extensions that do nothing else.

Both dialects give the same answers: the database only narrows the candidates (PostGIS'
`ST_DWithin` on the sphere with a small margin, or on SQLite a bounding box on an index over
(latitude, longitude)); the exact haversine distance, the radius cut, the order (distance, then
id) and the limit are decided in Python (`functions.location.geo`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, Text, and_, func, literal, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from functions.location.geo import EARTH_RADIUS_M

metadata = MetaData()
points = Table(
    "collection_points",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("source", String(20), nullable=False),
    Column("source_pk", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("road_address", String(300), nullable=False),
    Column("lot_address", String(300), nullable=False),
    Column("place_description", Text, nullable=False),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("coordinates", String(10), nullable=False),
    Column("hours", Text, nullable=False),
    Column("hours_note", Text, nullable=False),
    Column("phone", String(40), nullable=False),
    Column("place_url", String(500), nullable=False),
    Column("collection_items", Text, nullable=False),
    Column("introduction", Text, nullable=False),
    Column("store_category", String(30), nullable=False),
    Column("pickup_categories", String(200), nullable=False),
    Column("search_text", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
)
Row = dict[str, Any]
# from this radius on, order by KNN; below it, sort the few rows in the radius. bench_location.py
# --quick (100,000 points): zoom 10 (4.5 km) KNN p50 2.2 ms vs sorted 2.9 ms, zoom 5 (20 km) 1.3 vs
# 18 ms; zoom 13 (1.2 km) sorted 0.25 ms vs KNN 1.1 ms, zoom 16 (300 m) 0.12 vs 0.63 ms
KNN_FROM_M = 2_500.0
SLACK = 16  # extra candidates past the limit, so float differences at the cut cannot change the answer


def _filters(store: Sequence[str] | None, pickup: Sequence[str] | None) -> list[Any]:
    clauses: list[Any] = []
    if store:
        clauses.append(points.c.store_category.in_(list(store)))
    if pickup:
        wrapped = "," + points.c.pickup_categories + ","
        clauses.append(or_(*(wrapped.like(f"%,{p},%") for p in pickup)))
    return clauses


def nearby_statement(
    dialect: str,
    lat: float,
    lon: float,
    radius_m: float,
    limit: int,
    store: Sequence[str] | None = None,
    pickup: Sequence[str] | None = None,
) -> Select[Any]:
    """The index-backed candidate query for `dialect` ("postgresql" or "sqlite")."""
    filters = _filters(store, pickup)
    if dialect == "postgresql":
        within = text(
            "ST_DWithin(collection_points.geog, ST_SetSRID(ST_MakePoint(:w_lon, :w_lat), 4326)::geography, :w_m, false)"
        ).bindparams(w_lon=lon, w_lat=lat, w_m=radius_m * 1.001 + 1)
        if radius_m >= KNN_FROM_M:
            # `<->` on geography is the sphere distance and an index-ordered (KNN) scan: it stops after
            # `limit` rows instead of sorting every point of a wide, dense radius
            order = text(
                "collection_points.geog <-> ST_SetSRID(ST_MakePoint(:d_lon, :d_lat), 4326)::geography"
            ).bindparams(d_lon=lon, d_lat=lat)
        else:  # few rows in a small radius: sorting them beats walking the index in distance order
            order = text(
                "ST_Distance(collection_points.geog, ST_SetSRID(ST_MakePoint(:d_lon, :d_lat), 4326)::geography, false)"
            ).bindparams(d_lon=lon, d_lat=lat)
        return select(points).where(within, *filters).order_by(order).limit(limit + SLACK)
    dlat = math.degrees(radius_m / EARTH_RADIUS_M) * 1.001 + 1e-6
    widest = min(89.9, abs(lat) + dlat)
    dlon = min(180.0, dlat / math.cos(math.radians(widest)))
    box = and_(
        points.c.latitude.between(lat - dlat, lat + dlat),
        points.c.longitude.between(lon - dlon, lon + dlon),
    )
    return select(points).where(box, *filters)


def nearby_candidates(
    session: Session,
    lat: float,
    lon: float,
    radius_m: float,
    limit: int,
    store: Sequence[str] | None = None,
    pickup: Sequence[str] | None = None,
) -> list[Row]:
    """Points that may lie within `radius_m` (a superset, from an index); exact cut in geo.py."""
    dialect = session.get_bind().dialect.name
    query = nearby_statement(dialect, lat, lon, radius_m, limit, store, pickup)
    return [dict(r) for r in session.execute(query).mappings()]


def _escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def text_matches(session: Session, query: str, limit: int) -> list[Row]:
    """Points whose name or address holds every word of `query` (on PostgreSQL pg_trgm also forgives
    a typo; SQLite matches substrings only), names that match first."""
    words = query.lower().split()
    if not words:
        return []
    every = and_(*(points.c.search_text.like(f"%{_escape(w)}%", escape="\\") for w in words))
    name_hit = and_(*(points.c.name.ilike(f"%{_escape(w)}%", escape="\\") for w in words))
    if session.get_bind().dialect.name == "postgresql":
        phrase = " ".join(words)
        # pg_trgm word similarity (`<%`, threshold 0.6): the query against the best-matching part of
        # the text, so "고양시쳥" still finds 고양시's points; the GIN trigram index serves it at scale
        fuzzy = literal(phrase).op("<%")(points.c.search_text)
        score = func.word_similarity(phrase, points.c.search_text)
        stmt = select(points).where(or_(every, fuzzy)).order_by(name_hit.desc(), every.desc(), score.desc())
    else:
        stmt = select(points).where(every).order_by(name_hit.desc())
    stmt = stmt.order_by(points.c.id).limit(limit)
    return [dict(r) for r in session.execute(stmt).mappings()]


def by_id(session: Session, point_id: int) -> Row | None:
    found = session.execute(select(points).where(points.c.id == point_id)).mappings().first()
    return None if found is None else dict(found)
