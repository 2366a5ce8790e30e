"""Framework benchmarks (issue: framework core). Prints figures; baseline measured in the same run.

1. cold start: process start -> first 200 on /health/readiness, median of 5, each function vs a
   bare functions-framework hello function;
2. a no-I/O route through the framework (auth + metrics + JSON logs on) vs the baseline: req/s, p50, p99;
3. GET /api/v1/users/me with a real token on real PostgreSQL + Redis at 50 concurrent requests.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PG_ADMIN = os.environ.get("ECO2_TEST_DATABASE_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS = os.environ.get("ECO2_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret-0123456789-0123456789-012345"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.002)
    raise TimeoutError(path)


def start(cmd: list[str], env: dict[str, str], port: int, path: str) -> tuple[subprocess.Popen[bytes], float]:
    t0 = time.perf_counter()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    cwd = Path(full_env.get("ECO2_ROOT", ROOT))
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return proc, wait_ready(port, path, proc) - t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def baseline_cmd(port: int) -> list[str]:
    return [
        "functions-framework",
        "--source",
        str(HERE / "_baseline" / "main.py"),
        "--target",
        "hello",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]


def eco2_cmd(fn: str, port: int, root: Path = ROOT) -> list[str]:
    """The container's command (Knative has already set the environment)."""
    from eco2.core import funcyaml

    main = root / funcyaml.load(root / "func.yaml").get(fn).main_path
    return [sys.executable, "-m", "eco2.serving.server", str(main)]


def database() -> str:
    import psycopg

    name = f"eco2_bench_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    from eco2.tooling.migrate import upgrade

    upgrade(url)
    return url


def drop(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def measure(port: int, path: str, concurrency: int, total: int, headers: dict[str, str] | None = None) -> load.Result:
    """wrk when installed (apt-get install wrk), else the Python load generator."""
    result = load.wrk(port, path, concurrency=concurrency, seconds=max(3, total // 2000), headers=headers)
    return result or load.run(port, path, concurrency=concurrency, total=total, headers=headers)


def cold_starts(env: dict[str, str], runs: int) -> None:
    from eco2.core import funcyaml

    print(f"\n1) cold start: process start -> first 200 on /health/readiness (median of {runs})")
    base = []
    for _ in range(runs):
        port = free_port()
        proc, took = start(baseline_cmd(port), {}, port, "/health/readiness")
        stop(proc)
        base.append(took)
    b = load.median(base)
    print(f"   {'baseline (functions-framework hello)':<40} {b * 1000:7.0f} ms")
    for name, spec in funcyaml.load(ROOT / "func.yaml").functions.items():
        if not (ROOT / spec.main_path).exists():
            print(f"   {name:<40} (no {spec.main_path} yet)")
            continue
        times = []
        for _ in range(runs):
            port = free_port()
            proc, took = start(eco2_cmd(name, port), env, port, "/health/readiness")
            stop(proc)
            times.append(took)
        m = load.median(times)
        verdict = "meets" if m <= 1.3 * b else "misses"
        print(f"   {name:<40} {m * 1000:7.0f} ms  = {m / b:4.2f}x baseline ({verdict} the 1.3x goal)")


def throughput(total: int) -> None:
    print(f"\n2) no-I/O route, {total} requests, 10 concurrent keep-alive connections")
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec

    token = TokenCodec(Settings.from_env({"JWT_SECRET": SECRET})).issue("bench-user", "access", "kakao").token
    port = free_port()
    proc, _ = start(baseline_cmd(port), {}, port, "/")
    load.run(port, "/", concurrency=10, total=500)  # warm-up
    base = measure(port, "/", 10, total)
    stop(proc)
    print("   " + base.line("baseline hello"))
    env = {"ECO2_ENV": "test", "REDIS_URL": "memory://", "JWT_SECRET": SECRET, "LOG_LEVEL": "INFO"}
    port = free_port()
    proc, _ = start(
        eco2_cmd("ping", port, HERE / "_bench"), {**env, "ECO2_ROOT": str(HERE / "_bench")}, port, "/health/readiness"
    )
    headers = {"Authorization": f"Bearer {token}"}
    load.run(port, "/api/v1/bench/ping", concurrency=10, total=500, headers=headers)
    ours = measure(port, "/api/v1/bench/ping", 10, total, headers)
    stop(proc)
    print("   " + ours.line("eco2 (auth + metrics + logs)"))
    ratio = ours.rps / base.rps
    print(f"   ratio {ratio:4.2f}x baseline req/s ({'meets' if ratio >= 0.9 else 'misses'} the 0.9x goal)")


def users_me(env: dict[str, str], total: int, workers: str) -> None:
    print(f"\n3) GET /api/v1/users/me, real PostgreSQL + Redis, 50 concurrent, {total} requests, {workers} worker(s)")
    from eco2.core.db import Database
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec
    from functions.common.models import User

    db = Database(env["DATABASE_URL"])
    with db.session() as s:
        user = User(nickname="bench", last_login_provider="kakao")
        s.add(user)
        s.commit()
        user_id = str(user.id)
    db.close()
    token = TokenCodec(Settings.from_env({"JWT_SECRET": SECRET})).issue(user_id, "access", "kakao").token
    port = free_port()
    proc, _ = start(
        eco2_cmd("users", port), {**env, "DATABASE_POOL_SIZE": "10", "THREADS": "16"}, port, "/health/readiness"
    )
    headers = {"Authorization": f"Bearer {token}"}
    load.run(port, "/api/v1/users/me", concurrency=50, total=1000, headers=headers)
    result = measure(port, "/api/v1/users/me", 50, total, headers)
    single = measure(port, "/api/v1/users/me", 1, total // 5, headers)
    stop(proc)
    print("   " + result.line("users/me, 50 in flight"))
    print("   " + single.line("users/me, 1 in flight (service time)"))
    print(f"   p99 {result.pct(99):.2f} ms ({'meets' if result.pct(99) < 10 else 'misses'} the 10 ms goal)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("cold", "throughput", "users"))
    args = parser.parse_args()
    runs, total = (3, 3000) if args.quick else (5, 20000)
    print(f"eco2 framework benchmarks — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    url = database()
    env = {
        "ECO2_ENV": "test",
        "DATABASE_URL": url,
        "REDIS_URL": REDIS,
        "JWT_SECRET": SECRET,
        "LOG_LEVEL": "INFO",
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "ECO2_BROKER": "bench",
    }
    try:
        if args.only in (None, "cold"):
            cold_starts(env, runs)
        if args.only in (None, "throughput"):
            throughput(total)
        if args.only in (None, "users"):
            users_me(env, total // 2, "1")
            users_me(env, total // 2, "2")
    finally:
        drop(url)


if __name__ == "__main__":
    main()
