"""info benchmark (issue 11): `GET /api/v1/info/news` first page served from the Redis cache vs from
PostgreSQL, requests/s and p50/p99 in one run, plus a deep keyset page (past the cached head).

Two info processes on one freshly seeded database (real PostgreSQL + Redis), each as its container
runs it (`python -m eco2.serving.server`, 1 worker): one with the cache (the default), one with
NEWS_CACHE=false. The same load generator (wrk when installed, else load.py) drives both in turn.

    python tests/benchmarks/bench_info.py            # 20,000 articles, 4,000 requests per figure
    python tests/benchmarks/bench_info.py --quick    # 3,000 articles, 800 requests (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_framework import ROOT, database, drop, eco2_cmd, free_port, measure, stop

REDIS = os.environ.get("ECO2_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def get(port: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return dict(json.load(response))


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        eco2_cmd("info", port),
        env={**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"info exited with {proc.returncode}")
        try:
            if get(port, "/health/readiness")["status"] == "ok":
                return proc
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("info did not become ready")


def seed(url: str, count: int) -> None:
    from sqlalchemy import create_engine

    from eco2.core.db import normalise_url
    from functions.info.store import news_articles

    engine = create_engine(normalise_url(url))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    categories = ("environment", "energy", "ai")
    rows = [
        {
            "id": str(uuid.uuid4()),
            "url_key": uuid.uuid4().hex * 2,
            "url": f"https://news.example/{i}",
            "title": f"분리배출 기사 {i}",
            "snippet": "재활용과 에너지 이야기 " * 6,
            "source": "naver",
            "source_name": "news.example",
            "category": categories[i % 3],
            "keywords": json.dumps(["분리배출"], ensure_ascii=False),
            "thumbnail_url": f"https://cdn.example/{i}.jpg",
            "source_icon_url": None,
            "published_at": now - timedelta(minutes=i // 2),
            "collected_at": now,
        }
        for i in range(count)
    ]
    with engine.begin() as connection:
        for start_at in range(0, len(rows), 1000):
            connection.execute(news_articles.insert(), rows[start_at : start_at + 1000])
        connection.exec_driver_sql("ANALYZE news_articles")
    engine.dispose()


def deep_cursor(port: int, pages: int) -> str:
    cursor = ""
    for _ in range(pages):
        path = "/api/v1/info/news?limit=50" + (f"&cursor={cursor}" if cursor else "")
        cursor = str(get(port, path)["next_cursor"])
    return cursor


def served_from(port: int, path: str) -> str:
    meta = get(port, path)["meta"]
    assert isinstance(meta, dict)
    return str(meta["served_from"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--chart", action="store_true", help="write a PNG chart into tests/benchmarks/results/")
    args = parser.parse_args()
    articles, total = (3_000, 800) if args.quick else (20_000, 4_000)
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    url = database()
    processes = []
    panels: dict[str, dict[str, float]] = {}
    try:
        seed(url, articles)
        env = {
            "ECO2_ENV": "production",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS,
            "JWT_SECRET": "bench-secret-0123456789-0123456789-012345",
            "ALLOWED_ORIGINS": "http://127.0.0.1:5173",
            "LOG_LEVEL": "WARNING",
            "WORKERS": "1",
            "THREADS": "8",
            "ECO2_ROOT": str(ROOT),
        }
        ports = {}
        for label, extra in (("cache", {}), ("database", {"NEWS_CACHE": "false"})):
            port = free_port()
            processes.append(start({**env, **extra}, port))
            ports[label] = port
        first = "/api/v1/info/news?limit=10"
        assert served_from(ports["cache"], first) == "database"  # fills the cache
        assert served_from(ports["cache"], first) == "cache"
        assert served_from(ports["database"], first) == "database"
        deep = f"/api/v1/info/news?limit=10&cursor={deep_cursor(ports['cache'], 20)}"
        assert served_from(ports["cache"], deep) == "database"
        print(f"GET /api/v1/info/news, {articles} articles, {args.concurrency} connections, 1 worker x 8 threads")
        results = {}
        for label, port, path in (
            ("first page, Redis cache", ports["cache"], first),
            ("first page, PostgreSQL", ports["database"], first),
            ("page 100 (keyset, PostgreSQL)", ports["cache"], deep),
        ):
            measure(port, path, args.concurrency, 1)  # warm-up, 1 s
            results[label] = measure(port, path, args.concurrency, max(3, total // 2000))  # seconds
            print("  " + results[label].line(label))
        cached, direct = results["first page, Redis cache"], results["first page, PostgreSQL"]
        print(
            f"  cache vs PostgreSQL: {cached.rps / direct.rps:.2f}x req/s, p99 {cached.pct(99):.2f} vs "
            f"{direct.pct(99):.2f} ms"
        )
        deep_page = results["page 100 (keyset, PostgreSQL)"]
        panels = {
            f"req/s, {articles} articles, {args.concurrency} connections": {
                "baseline: first page, PostgreSQL": direct.rps,
                "first page, Redis cache": cached.rps,
                "page 100 (keyset, PostgreSQL)": deep_page.rps,
            },
            "latency (ms)": {
                "baseline: PostgreSQL p50": direct.pct(50),
                "cache p50": cached.pct(50),
                "page 100 p50": deep_page.pct(50),
                "baseline: PostgreSQL p99": direct.pct(99),
                "cache p99": cached.pct(99),
                "page 100 p99": deep_page.pct(99),
            },
        }
    finally:
        for proc in processes:
            stop(proc)
        drop(url)
    if args.chart:
        import charts

        print("chart:", charts.write("info", panels))


if __name__ == "__main__":
    main()
