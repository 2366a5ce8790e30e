"""Framework benchmarks (issues: framework core, 14). Every figure is a ratio to a baseline measured
in the same run by a hand-written minimal program doing the same work with the same libraries.

1. cold start: process start -> first 200 on /health/readiness, median of 5 (`--quick`: 3), each
   function vs a bare functions-framework hello; and process start -> first 200 on a real
   authenticated `GET /api/v1/users/me` vs the plain function (_baseline/users_me.py: PyJWT, the
   same Redis revocation keys, the same row through a psycopg pool); the `-X importtime` top 10;
2. a no-I/O route through the framework (auth with the real Redis revocation check, metrics and
   JSON logs on) vs the bare hello: req/s, p50, p99;
3. GET /api/v1/users/me on real PostgreSQL + Redis vs the plain function: req/s at 10 and 50 in
   flight and p50 at 1 in flight, one worker (`--quick` skips the 2-worker run).
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
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


def wait_ready(
    port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 30, headers: dict[str, str] | None = None
) -> float:
    deadline = time.perf_counter() + timeout
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.002)
    raise TimeoutError(path)


def start(
    cmd: list[str], env: dict[str, str], port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], float]:
    t0 = time.perf_counter()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    cwd = Path(full_env.get("ECO2_ROOT", ROOT))
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return proc, wait_ready(port, path, proc, headers=headers) - t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def baseline_cmd(port: int, source: str = "main.py", target: str = "hello") -> list[str]:
    return [
        "functions-framework",
        "--source",
        str(HERE / "_baseline" / source),
        "--target",
        target,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]


def plain_users_cmd(port: int) -> list[str]:
    return baseline_cmd(port, "users_me.py", "users_me")


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


def verdict(ratio: float, goal: float, higher_is_better: bool) -> str:
    met = ratio >= goal if higher_is_better else ratio <= goal
    return f"{'meets' if met else 'misses'} the {'≥' if higher_is_better else '≤'} {goal}x goal"


def bench_user(env: dict[str, str]) -> tuple[str, str]:
    """A user row and a real access token (with a session id, so all three revocation keys are read)."""
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
    codec = TokenCodec(Settings.from_env({"JWT_SECRET": SECRET}))
    return user_id, codec.issue(user_id, "access", "kakao", session_id=uuid.uuid4().hex).token


def median_start(
    cmd: Callable[[int], list[str]], env: dict[str, str], path: str, runs: int, headers: dict[str, str] | None = None
) -> float:
    """Median of `runs` cold starts: process start -> first 200 on `path`."""
    times = []
    for _ in range(runs):
        port = free_port()
        proc, took = start(cmd(port), env, port, path, headers)
        stop(proc)
        times.append(took)
    return load.median(times)


def import_times(cmd: list[str], env: dict[str, str], path: str, headers: dict[str, str], top: int = 10) -> None:
    """`python -X importtime` of the users function until its first authenticated 200: top modules."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        wait_ready(port, path, proc, headers=headers)
    finally:
        stop(proc)
    assert proc.stderr is not None
    rows = []
    for line in proc.stderr.read().decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, self_us, cumulative, name = line.replace("import time:", "|").split("|")
        rows.append((int(cumulative), int(self_us), name[1:].rstrip()))  # indented by depth below the top level
    total = sum(c for c, _, n in rows if not n.startswith(" "))
    print(f"   -X importtime, users to its first authenticated 200: {total / 1000:.0f} ms importing; top {top}:")
    print(f"     {'cumulative':>10} {'self':>8}  module (top-level imports)")
    for cumulative, self_us, name in sorted((r for r in rows if not r[2].startswith(" ")), reverse=True)[:top]:
        print(f"     {cumulative / 1000:8.1f}ms {self_us / 1000:6.1f}ms  {name}")
    print(f"     {'self':>10}           module (any depth)")
    for _cumulative, self_us, name in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"     {self_us / 1000:8.1f}ms           {name.strip()}")


def cold_starts(env: dict[str, str], runs: int, token: str) -> dict[str, float]:
    from eco2.core import funcyaml

    figures: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    print(f"\n1) cold start: process start -> first 200 (median of {runs})")
    b = median_start(baseline_cmd, {}, "/health/readiness", runs)
    figures["baseline hello"] = b
    print(f"   {'baseline: functions-framework hello':<44} {b * 1000:7.0f} ms")
    plain = median_start(plain_users_cmd, env, "/api/v1/users/me", runs, headers)
    figures["baseline users/me"] = plain
    print(f"   {'baseline: plain users/me, authenticated 200':<44} {plain * 1000:7.0f} ms")
    for name, spec in funcyaml.load(ROOT / "func.yaml").functions.items():
        if not (ROOT / spec.main_path).exists():
            print(f"   {name:<44} (no {spec.main_path} yet)")
            continue
        try:
            m = median_start(functools.partial(eco2_cmd, name), env, "/health/readiness", runs)
        except (RuntimeError, TimeoutError) as exc:  # e.g. needs an outside service this run does not give
            print(f"   {name + ', readiness':<44} did not become ready ({type(exc).__name__}: {exc})")
            continue
        figures[name] = m
        print(f"   {name + ', readiness':<44} {m * 1000:7.0f} ms = {m / b:4.2f}x hello ({verdict(m / b, 1.3, False)})")
    users = median_start(functools.partial(eco2_cmd, "users"), env, "/api/v1/users/me", runs, headers)
    figures["users/me"] = users
    print(
        f"   {'users, authenticated GET /users/me 200':<44} {users * 1000:7.0f} ms = {users / plain:4.2f}x plain "
        f"({verdict(users / plain, 1.15, False)})"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as empty:  # no .pyc anywhere: every module compiled from source
        cold = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        users_src = median_start(functools.partial(eco2_cmd, "users"), cold, "/api/v1/users/me", runs, headers)
        plain_src = median_start(plain_users_cmd, cold, "/api/v1/users/me", runs, headers)
    figures["users/me, no bytecode"] = users_src
    print(
        f"   {'without precompiled bytecode: users':<44} {users_src * 1000:7.0f} ms = {users_src / users:4.2f}x "
        f"with; plain {plain_src * 1000:.0f} ms = {plain_src / plain:4.2f}x with"
    )
    import_times(eco2_cmd("users", 0), env, "/api/v1/users/me", headers)
    return figures


def throughput(total: int) -> dict[str, float]:
    print(f"\n2) no-I/O route, {total} requests, 10 concurrent keep-alive connections")
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec

    codec = TokenCodec(Settings.from_env({"JWT_SECRET": SECRET}))
    token = codec.issue("bench-user", "access", "kakao", session_id=uuid.uuid4().hex).token
    port = free_port()
    proc, _ = start(baseline_cmd(port), {}, port, "/")
    load.run(port, "/", concurrency=10, total=500)  # warm-up
    base = measure(port, "/", 10, total)
    stop(proc)
    print("   " + base.line("baseline hello"))
    env = {"ECO2_ENV": "test", "REDIS_URL": REDIS, "JWT_SECRET": SECRET, "LOG_LEVEL": "INFO"}
    headers = {"Authorization": f"Bearer {token}"}
    runs: dict[str, load.Result] = {}
    for label, view in (("eco2 (auth + metrics + logs)", "on"), ("eco2, revocation view off (MGET)", "off")):
        port = free_port()
        proc, _ = start(
            eco2_cmd("ping", port, HERE / "_bench"),
            {**env, "ECO2_ROOT": str(HERE / "_bench"), "ECO2_REVOCATION_VIEW": view},
            port,
            "/health/readiness",
        )
        load.run(port, "/api/v1/bench/ping", concurrency=10, total=500, headers=headers)
        time.sleep(0.3)  # the view's first load and heartbeat (the warm-up's first requests started it)
        runs[label] = measure(port, "/api/v1/bench/ping", 10, total, headers)
        stop(proc)
        print("   " + runs[label].line(label))
    ours, off = runs["eco2 (auth + metrics + logs)"], runs["eco2, revocation view off (MGET)"]
    ratio = ours.rps / base.rps
    print(f"   ratio {ratio:4.2f}x baseline req/s ({verdict(ratio, 0.9, True)}); view off: {off.rps / base.rps:4.2f}x")
    return {"hello req/s": base.rps, "eco2 ping req/s": ours.rps, "eco2 ping, view off": off.rps}


def users_me(env: dict[str, str], total: int, workers: str, token: str) -> dict[str, float]:
    print(f"\n3) GET /api/v1/users/me, real PostgreSQL + Redis, {total} requests, {workers} worker(s)")
    headers = {"Authorization": f"Bearer {token}"}
    server_env = {**env, "DATABASE_POOL_SIZE": "10", "THREADS": "16", "WORKERS": workers}
    results: dict[str, dict[int, load.Result]] = {}
    commands: tuple[tuple[str, Callable[[int], list[str]]], ...] = (
        ("plain", plain_users_cmd),
        ("eco2", functools.partial(eco2_cmd, "users")),
    )
    for label, cmd in commands:
        port = free_port()
        proc, _ = start(cmd(port), server_env, port, "/api/v1/users/me", headers)
        try:
            load.run(port, "/api/v1/users/me", concurrency=50, total=1000, headers=headers)  # warm-up
            results[label] = {
                50: measure(port, "/api/v1/users/me", 50, total, headers),
                10: measure(port, "/api/v1/users/me", 10, total, headers),
                1: load.run(port, "/api/v1/users/me", concurrency=1, total=total // 5, headers=headers),
            }
        finally:
            stop(proc)
    figures: dict[str, float] = {}
    for in_flight in (50, 10, 1):
        plain, ours = results["plain"][in_flight], results["eco2"][in_flight]
        print("   " + plain.line(f"plain, {in_flight} in flight"))
        print("   " + ours.line(f"eco2 users, {in_flight} in flight"))
        figures[f"plain {in_flight}"], figures[f"eco2 {in_flight}"] = plain.rps, ours.rps
        if in_flight == 1:
            ratio = ours.pct(50) / plain.pct(50)
            print(f"   p50 at 1 in flight: {ratio:4.2f}x plain ({verdict(ratio, 1.2, False)})")
            figures["p50 plain"], figures["p50 eco2"] = plain.pct(50), ours.pct(50)
        else:
            ratio = ours.rps / plain.rps
            print(f"   req/s at {in_flight} in flight: {ratio:4.2f}x plain ({verdict(ratio, 0.9, True)})")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("cold", "throughput", "users"))
    parser.add_argument("--chart", action="store_true", help="write PNG charts into tests/benchmarks/results/")
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
    charts: dict[str, dict[str, float]] = {}
    try:
        _, token = bench_user(env)
        if args.only in (None, "cold"):
            charts["cold start (s)"] = cold_starts(env, runs, token)
        if args.only in (None, "throughput"):
            charts["no-I/O route (req/s)"] = throughput(total)
        if args.only in (None, "users"):
            charts["users/me, 1 worker (req/s)"] = users_me(env, total // 2, "1", token)
            if not args.quick:
                charts["users/me, 2 workers (req/s)"] = users_me(env, total // 2, "2", token)
    finally:
        drop(url)
    if args.chart:
        import charts as charting

        print("   chart:", charting.write("framework", charts))


if __name__ == "__main__":
    main()
