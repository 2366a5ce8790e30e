"""Nearby-search benchmark for the location function (issue 10).

A fresh PostgreSQL database migrated to head (PostGIS, the 760 real points), plus N synthetic
points spread over Korea (default 1,000,000: 70 % around 16 cities, 30 % uniform over the
peninsula's box). From random centres drawn the same way, nearby queries at zoom 5, 10, 13 and 16
(radius 20 km, 4.5 km, 1.2 km, 300 m; limit 80, 160, 200, 200):

- SQL level, the function's own statement (store.py: PostGIS `ST_DWithin`, then KNN `<->` order
  from 2.5 km on, a sort of the rows in the radius below);
- SQL level, PostGIS `ST_DWithin` + `ORDER BY ST_Distance` at every radius (always sorting);
- SQL level, cube/earthdistance with a GiST index on `ll_to_earth` (`earth_box` + `earth_distance`);
- the sequential baseline: a haversine over every row, measured in the same run;
- through the function (its real functions-framework target, in process): GET /centers.

Goal: p50 < 5 ms and p99 < 20 ms at the SQL level for zoom >= 10, and >= 50x faster than the
sequential scan. Misses are printed as misses.

    python tests/benchmarks/bench_location.py            # 1,000,000 points
    python tests/benchmarks/bench_location.py --quick    # 100,000 points, fewer queries
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

ADMIN_URL = os.environ.get("ECO2_TEST_DATABASE_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ECO2_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ZOOMS = {5: (20_000, 80), 10: (4_500, 160), 13: (1_200, 200), 16: (300, 200)}
CITIES = [  # (lat, lon, weight): the larger cities get more points
    (37.5665, 126.9780, 10),
    (35.1796, 129.0756, 4),
    (37.4563, 126.7052, 3),
    (35.8714, 128.6014, 3),
    (36.3504, 127.3845, 2),
    (35.1595, 126.8526, 2),
    (35.5384, 129.3114, 1.5),
    (37.2636, 127.0286, 3),
    (37.6584, 126.8320, 2),
    (37.3219, 127.1189, 2),
    (36.6424, 127.4890, 1),
    (35.8242, 127.1480, 1),
    (36.8151, 127.1139, 1),
    (35.2281, 128.6811, 1.5),
    (37.8813, 127.7298, 0.7),
    (33.4996, 126.5312, 0.8),
]
LAT_BOX, LON_BOX = (34.3, 38.3), (126.1, 129.5)


def draw(rng: random.Random) -> tuple[float, float]:
    if rng.random() < 0.7:
        lat, lon, _ = rng.choices(CITIES, weights=[c[2] for c in CITIES])[0]
        return lat + rng.gauss(0, 0.12), lon + rng.gauss(0, 0.15)
    return rng.uniform(*LAT_BOX), rng.uniform(*LON_BOX)


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q / 100 * len(data)))]


# -- the database -----------------------------------------------------------------------------------
def create_database(points: int, seed: int) -> str:
    import psycopg

    from eco2.tooling.migrate import upgrade

    name = f"eco2_bench_location_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    upgrade(url)
    rng = random.Random(seed)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX ix_collection_points_geog")
        conn.execute("DROP INDEX ix_collection_points_search")
        with conn.cursor().copy(
            "COPY collection_points (id, source, source_pk, name, latitude, longitude, store_category, "
            "pickup_categories, content_hash) FROM STDIN"
        ) as copy:
            for i in range(points):
                lat, lon = draw(rng)
                pid = 10_000_000_000 + i
                copy.write_row((pid, "synthetic", str(pid), f"p{i}", lat, lon, "general", "general", ""))
        conn.execute("CREATE INDEX ix_collection_points_geog ON collection_points USING gist (geog)")
        conn.execute("CREATE EXTENSION IF NOT EXISTS cube")
        conn.execute("CREATE EXTENSION IF NOT EXISTS earthdistance")
        conn.execute(
            "CREATE INDEX ix_bench_earth ON collection_points USING gist (ll_to_earth(latitude, longitude)) "
            "WHERE latitude IS NOT NULL"
        )
        conn.execute("VACUUM ANALYZE collection_points")
        size = conn.execute(
            "SELECT pg_size_pretty(pg_relation_size('ix_collection_points_geog')), "
            "pg_size_pretty(pg_relation_size('ix_bench_earth'))"
        ).fetchone()
    print(
        f"{points:,} synthetic points + 760 real loaded and indexed in {time.perf_counter() - started:.1f} s; "
        f"index sizes: PostGIS {size[0]}, earthdistance {size[1]}"
    )  # type: ignore[index]
    return url


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


# -- the queries --------------------------------------------------------------------------------------
def function_statement(lat: float, lon: float, radius: float, limit: int) -> tuple[str, dict[str, Any]]:
    from sqlalchemy.dialects import postgresql

    from functions.location.store import nearby_statement

    compiled = nearby_statement("postgresql", lat, lon, radius, limit).compile(dialect=postgresql.psycopg.dialect())
    return str(compiled), dict(compiled.params)


CENTRE = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
SORTED = (
    f"SELECT id FROM collection_points WHERE ST_DWithin(geog, {CENTRE}, %(r)s, false) "
    f"ORDER BY ST_Distance(geog, {CENTRE}, false), id LIMIT %(n)s"
)
EARTH = (
    "SELECT id FROM collection_points WHERE latitude IS NOT NULL "
    "AND earth_box(ll_to_earth(%(lat)s, %(lon)s), %(r)s) @> ll_to_earth(latitude, longitude) "
    "AND earth_distance(ll_to_earth(%(lat)s, %(lon)s), ll_to_earth(latitude, longitude)) <= %(r)s "
    "ORDER BY earth_distance(ll_to_earth(%(lat)s, %(lon)s), ll_to_earth(latitude, longitude)), id LIMIT %(n)s"
)
SEQUENTIAL = (
    "SELECT id FROM (SELECT id, 2 * 6371008.8 * asin(sqrt(power(sin(radians(latitude - %(lat)s) / 2), 2) "
    "+ cos(radians(%(lat)s)) * cos(radians(latitude)) * power(sin(radians(longitude - %(lon)s) / 2), 2))) "
    "AS d FROM collection_points WHERE latitude IS NOT NULL) s WHERE d <= %(r)s ORDER BY d, id LIMIT %(n)s"
)


Make = Callable[[float, float, float, int], tuple[str, dict[str, Any]]]


def time_sql(
    conn: Any, variants: dict[str, Make], centres: list[tuple[float, float]], radius: float, limit: int, seq: int
) -> tuple[dict[str, list[float]], float]:
    """Every variant on every centre, in a rotating order (no variant always finds the pages cached
    by another); the sequential scan only on the first `seq` centres. Also the mean rows of ours."""
    took: dict[str, list[float]] = {name: [] for name in variants}
    rows = 0
    names = list(variants)
    for i, (lat, lon) in enumerate(centres):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            if name == "seq" and i >= seq:
                continue
            sql, params = variants[name](lat, lon, radius, limit)
            started = time.perf_counter()
            found = len(conn.execute(sql, params).fetchall())
            took[name].append((time.perf_counter() - started) * 1000)
            rows += found if name == "ours" else 0
    return took, rows / len(centres)


def plain(sql: str) -> Callable[[float, float, float, int], tuple[str, dict[str, Any]]]:
    return lambda lat, lon, r, n: (sql, {"lat": lat, "lon": lon, "r": r, "n": n})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 points and fewer queries")
    parser.add_argument("--points", type=int)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--chart", action="store_true", help="write a PNG chart into tests/benchmarks/results/")
    args = parser.parse_args()
    points = args.points or (100_000 if args.quick else 1_000_000)
    n_sql, n_fn, n_seq = (60, 30, 4) if args.quick else (300, 100, 10)

    import psycopg

    from eco2.serving.testing import FunctionClient

    url = create_database(points, args.seed)
    rng = random.Random(args.seed + 1)
    results: list[dict[str, Any]] = []
    try:
        env = {
            "ECO2_ENV": "test",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "LOG_LEVEL": "ERROR",
            "JWT_SECRET": "bench-secret-0123456789-0123456789-012345",
            "ALLOWED_ORIGINS": "http://127.0.0.1:5173",
        }
        client = FunctionClient("location", env, root=ROOT)
        for lat, lon in [draw(rng) for _ in range(5)]:  # steady state: first-request costs are bench_framework's
            client.get(f"/api/v1/locations/centers?lat={lat:.6f}&lon={lon:.6f}&zoom=10")
        with psycopg.connect(url, autocommit=True) as conn:
            for zoom, (radius, limit) in ZOOMS.items():
                centres = [draw(rng) for _ in range(n_sql)]
                variants = {
                    "ours": function_statement,
                    "sorted": plain(SORTED),
                    "earth": plain(EARTH),
                    "seq": plain(SEQUENTIAL),
                }
                time_sql(conn, variants, [draw(rng) for _ in range(8)], radius, limit, 0)  # warm the prepares
                took, rows = time_sql(conn, variants, centres, radius, limit, n_seq)
                row: dict[str, Any] = {"zoom": zoom, "radius": radius, "limit": limit, "rows": rows, **took}
                fn = []
                for lat, lon in centres[:n_fn]:
                    started = time.perf_counter()
                    response = client.get(f"/api/v1/locations/centers?lat={lat:.6f}&lon={lon:.6f}&zoom={zoom}")
                    fn.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.get_data(as_text=True)
                row["function"] = fn
                results.append(row)
        client.close()
    finally:
        drop_database(url)

    print(f"\n{points:,} points; SQL {n_sql} queries per zoom (sequential {n_seq}), function {n_fn}; ms p50 / p99")
    print(
        f"{'zoom':>4} {'radius':>7} {'rows':>6} | {'PostGIS (ours)':>19} | {'PostGIS sorted':>15} | "
        f"{'earthdistance':>15} | {'sequential':>15} | {'x seq':>6} | {'function':>15}"
    )
    misses = []
    for r in results:
        cells = [f"{pct(r[k], 50):7.2f} / {pct(r[k], 99):6.2f}" for k in ("ours", "sorted", "earth", "seq", "function")]
        speedup = pct(r["seq"], 50) / pct(r["ours"], 50)
        print(
            f"{r['zoom']:>4} {r['radius']:>6}m {r['rows']:>6.0f} | {cells[0]:>19} | {cells[1]:>15} | {cells[2]:>15} "
            f"| {cells[3]:>15} | {speedup:5.0f}x | {cells[4]:>15}"
        )
        if r["zoom"] >= 10:
            if pct(r["ours"], 50) >= 5 or pct(r["ours"], 99) >= 20:
                misses.append(
                    f"zoom {r['zoom']}: SQL p50 {pct(r['ours'], 50):.2f} ms / p99 {pct(r['ours'], 99):.2f} ms"
                )
            if speedup < 50:
                misses.append(f"zoom {r['zoom']}: only {speedup:.0f}x faster than the sequential scan")
    print(
        "\ngoal (zoom >= 10): SQL p50 < 5 ms, p99 < 20 ms, >= 50x the sequential scan: "
        + ("met" if not misses else "MISSED — " + "; ".join(misses))
    )
    if args.chart:
        import charts

        print("chart:", charts.write("location", chart_panels(results, points), log=True))
    return 0


def chart_panels(results: list[dict[str, Any]], points: int) -> dict[str, dict[str, float]]:
    """p50 / p99 per zoom of the function's SQL and of GET /centers beside the sequential scan (the
    baseline), and the speed-up beside its goal."""
    series = (("seq", "baseline: seq scan"), ("ours", "PostGIS"), ("function", "GET /centers"))
    panels: dict[str, dict[str, float]] = {}
    for q in (50, 99):
        panels[f"p{q} (ms), {points:,} points"] = {
            f"z{r['zoom']} {label}": pct(r[key], q) for r in results for key, label in series
        }
    panels["speed-up vs the seq scan, p50 (x)"] = {
        "baseline: goal ≥ 50x": 50,
        **{f"zoom {r['zoom']}": pct(r["seq"], 50) / pct(r["ours"], 50) for r in results},
    }
    return panels


if __name__ == "__main__":
    raise SystemExit(main())
