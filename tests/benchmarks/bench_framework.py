"""Framework benchmarks (issues: framework core, 14). Every figure is a ratio to a baseline measured
in the same run by a hand-written minimal program doing the same work with the same libraries.

1. cold start: process start -> first 200 on /health/readiness, median of 5 (`--quick`: 3), each
   function vs a bare functions-framework hello; and process start -> first 200 on a real
   authenticated `GET /api/v1/users/me` vs the plain function (_baseline/users_me.py: PyJWT, the
   same Redis revocation keys, the same row through a psycopg pool); the `-X importtime` top 10
   (users to that 200, scan-worker to readiness); the functions that call the model get a key and
   the local stand-in (tests/support/llm_server.py), so their start builds the openai client as
   deployed; and each function's library floor (_baseline/floor.py: the same baseline after
   importing every module the function had imported by the same point, except eco2's own), so
   the function over its floor is eco2's own start and the floor over the baseline the libraries';
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
    try:
        return proc, wait_ready(port, path, proc, headers=headers) - t0
    except BaseException:
        stop(proc)  # never leave a server behind (e.g. one that cannot become ready here)
        raise


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


def measure(
    port: int, path: str, concurrency: int, seconds: float, headers: dict[str, str] | None = None
) -> load.Result:
    """wrk when installed (apt-get install wrk), else the Python load generator (bounded by time)."""
    result = load.wrk(port, path, concurrency=concurrency, seconds=max(1, round(seconds)), headers=headers)
    return result or load.run(port, path, concurrency=concurrency, total=10**6, max_seconds=seconds, headers=headers)


def interleaved(
    targets: dict[str, tuple[int, str]], concurrency: int, seconds: float, rounds: int, headers: dict[str, str]
) -> dict[str, list[load.Result]]:
    """Every server (label -> port, path) measured once per round, the order reversed every other
    round (A B, B A, ...), so a machine that gets busier or quieter during the run moves all alike."""
    results: dict[str, list[load.Result]] = {label: [] for label in targets}
    labels = list(targets)
    for round_ in range(rounds):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            port, path = targets[label]
            results[label].append(measure(port, path, concurrency, seconds, headers))
    return results


def paired_ratio(ours: list[load.Result], base: list[load.Result], figure: Callable[[load.Result], float]) -> float:
    """The median over rounds of ours / baseline measured in the same round."""
    return load.median([figure(a) / figure(b) for a, b in zip(ours, base, strict=True)])


def summary(label: str, results: list[load.Result]) -> str:
    rps = load.median([r.rps for r in results])
    p50 = load.median([r.pct(50) for r in results])
    p99 = load.median([r.pct(99) for r in results])
    rounds = " ".join(f"{r.rps:.0f}" for r in results)
    return f"{label:<38} {rps:7.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  (medians; rounds: {rounds})"


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


OWN_PACKAGES = frozenset(("eco2", "eventing", "functions", "tests", "main", "__main__"))


def imported(
    cmd: list[str], env: dict[str, str], path: str, headers: dict[str, str] | None
) -> list[tuple[int, int, str]]:
    """`python -X importtime` of a process until its first 200 on `path`: (cumulative µs, self µs,
    name indented by depth below the top level) per module, in the order each finished importing."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONPROFILEIMPORTTIME": "1"}
    import tempfile

    with tempfile.TemporaryFile() as err:  # a file, not a pipe: thousands of lines would fill a pipe and block
        proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        try:
            wait_ready(port, path, proc, headers=headers)
        finally:
            stop(proc)
        err.seek(0)
        output = err.read().decode(errors="replace")
    rows = []
    for line in output.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, self_us, cumulative, name = line.replace("import time:", "|").split("|")
        rows.append((int(cumulative), int(self_us), name[1:].rstrip()))  # indented by depth below the top level
    return rows


def floor_modules(rows: list[tuple[int, int, str]], out: Path) -> None:
    """Write the modules of `rows` that are not eco2's own, in import order, for _baseline/floor.py."""
    out.write_text("\n".join(n.strip() for _, _, n in rows if n.strip().split(".")[0] not in OWN_PACKAGES))


def import_times(
    cmd: list[str], env: dict[str, str], path: str, headers: dict[str, str] | None, label: str, top: int = 10
) -> None:
    """`python -X importtime` of a function until its first 200 on `path`: top modules."""
    rows = imported(cmd, env, path, headers)
    total = sum(c for c, _, n in rows if not n.startswith(" "))
    print(f"   -X importtime, {label}: {total / 1000:.0f} ms importing; top {top}:")
    print(f"     {'cumulative':>10} {'self':>8}  module (top-level imports)")
    for cumulative, self_us, name in sorted((r for r in rows if not r[2].startswith(" ")), reverse=True)[:top]:
        print(f"     {cumulative / 1000:8.1f}ms {self_us / 1000:6.1f}ms  {name}")
    print(f"     {'self':>10}           module (any depth)")
    for _cumulative, self_us, name in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"     {self_us / 1000:8.1f}ms           {name.strip()}")


def library_floors(
    targets: dict[str, tuple[Callable[[int], list[str]], dict[str, str], str, dict[str, str] | None]],
    env: dict[str, str],
) -> dict[str, tuple[Callable[[int], list[str]], dict[str, str], str, dict[str, str] | None]]:
    """A floor per eco2 target (`_baseline/floor.py`): the modules the function imported by its
    first 200, taken from one `-X importtime` start, imported by the bare baseline (the plain
    users/me for the users/me target, else the hello) before it serves."""
    import tempfile

    listing_dir = Path(tempfile.mkdtemp(prefix="eco2-floors-"))
    floors = {}
    for label, (cmd, cmd_env, path, headers) in targets.items():
        if label.startswith("baseline"):
            continue
        listing = listing_dir / f"{label.replace('/', '_')}.txt"
        try:
            floor_modules(imported(cmd(0), cmd_env, path, headers), listing)
        except (RuntimeError, TimeoutError):
            continue  # the function itself cannot start here; its own row says so
        plain_target = label == "users/me"
        floor_env = {**(env if plain_target else {}), "FLOOR_MODULES": str(listing)}
        if plain_target:
            floor_env["FLOOR_TARGET"] = "users_me"
        floors[f"floor: {label}"] = (
            functools.partial(baseline_cmd, source="floor.py", target="users_me" if plain_target else "hello"),
            floor_env,
            path,
            headers,
        )
    return floors


def precompile() -> None:
    """Bytecode for the project's own modules, as the built image has (eco2.tooling.image compiles
    every layer); installed packages got theirs from pip. Without it every start compiles the
    project from source, while the baselines are one small file."""
    dirs = [str(ROOT / d) for d in ("platform", "eventing", "functions", "tests/benchmarks")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *dirs], check=True, stdout=subprocess.DEVNULL)


def cold_starts(env: dict[str, str], runs: int, token: str) -> dict[str, float]:
    from eco2.core import funcyaml

    headers = {"Authorization": f"Bearer {token}"}
    precompile()
    print(f"\n1) cold start: process start -> first 200, {runs} interleaved runs (medians; bytecode precompiled)")
    users_cmd = functools.partial(eco2_cmd, "users")
    targets: dict[str, tuple[Callable[[int], list[str]], dict[str, str], str, dict[str, str] | None]] = {
        "baseline hello": (baseline_cmd, {}, "/health/readiness", None),
        "baseline users/me": (plain_users_cmd, env, "/api/v1/users/me", headers),
        "users/me": (users_cmd, env, "/api/v1/users/me", headers),
    }
    for name, spec in funcyaml.load(ROOT / "func.yaml").functions.items():
        if (ROOT / spec.main_path).exists():
            targets[name] = (functools.partial(eco2_cmd, name), env, "/health/readiness", None)
    floors = library_floors(targets, env)
    targets.update(floors)
    times: dict[str, list[float]] = {label: [] for label in targets}
    failed: dict[str, str] = {}
    labels = list(targets)
    for run in range(runs):
        for label in labels if run % 2 == 0 else labels[::-1]:
            if label in failed:
                continue
            cmd, cmd_env, path, cmd_headers = targets[label]
            try:
                times[label].append(median_start(cmd, cmd_env, path, 1, cmd_headers))
            except (RuntimeError, TimeoutError) as exc:  # e.g. needs an outside service this run does not give
                failed[label] = f"{type(exc).__name__}: {exc}"
    order = [x for label in labels if not label.startswith("floor: ") for x in (f"floor: {label}", label)]
    figures = {
        label: load.median(times[label]) for label in order if times.get(label)
    }  # each floor beside its function
    hello, plain = times["baseline hello"], times["baseline users/me"]
    print(f"   {'baseline: functions-framework hello':<44} {figures['baseline hello'] * 1000:7.0f} ms")
    print(f"   {'baseline: plain users/me, authenticated 200':<44} {figures['baseline users/me'] * 1000:7.0f} ms")

    def same_round(label: str, base: list[float]) -> float:
        return load.median([a / b for a, b in zip(times[label], base, strict=True)])

    def own(label: str) -> str:
        """The function over its library floor, and the floor over its baseline (same rounds)."""
        floor = f"floor: {label}"
        if floor not in figures or label not in figures:
            return ""
        base = plain if label == "users/me" else hello
        floor_ratio, own_ratio = same_round(floor, base), same_round(label, times[floor])
        return f"; floor {figures[floor] * 1000:.0f} ms = {floor_ratio:4.2f}x, eco2's own {own_ratio:4.2f}x"

    for label in [label for label in labels[3:] if not label.startswith("floor: ")]:
        if label in failed:
            print(f"   {label + ', readiness':<44} did not become ready ({failed[label]})")
            continue
        ratio = same_round(label, hello)
        print(
            f"   {label + ', readiness':<44} {figures[label] * 1000:7.0f} ms = {ratio:4.2f}x hello"
            f" ({verdict(ratio, 1.3, False)}{own(label)})"
        )
    ratio = same_round("users/me", plain)
    print(
        f"   {'users, authenticated GET /users/me 200':<44} {figures['users/me'] * 1000:7.0f} ms = {ratio:4.2f}x plain "
        f"({verdict(ratio, 1.15, False)}{own('users/me')})"
    )
    print(
        "   floor: the baseline after importing every module the function had imported by then, but eco2's own"
        " (_baseline/floor.py); eco2's own = the function / its floor"
    )
    for label in failed:
        if label.startswith("floor: "):
            print(f"   {label} did not become ready ({failed[label]})")
    import tempfile

    with tempfile.TemporaryDirectory() as empty:  # no .pyc anywhere: every module compiled from source
        cold = {**env, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        users_src = median_start(users_cmd, cold, "/api/v1/users/me", runs, headers)
        plain_src = median_start(plain_users_cmd, cold, "/api/v1/users/me", runs, headers)
    figures["users/me, no bytecode"] = users_src
    print(
        f"   {'without precompiled bytecode: users':<44} {users_src * 1000:7.0f} ms = "
        f"{users_src / figures['users/me']:4.2f}x with; plain {plain_src * 1000:.0f} ms = "
        f"{plain_src / figures['baseline users/me']:4.2f}x with"
    )
    import_times(eco2_cmd("users", 0), env, "/api/v1/users/me", headers, "users to its first authenticated 200")
    import_times(eco2_cmd("scan-worker", 0), env, "/health/readiness", None, "scan-worker to readiness", top=8)
    return figures


def throughput(seconds: float, rounds: int) -> dict[str, float]:
    print(
        f"\n2) no-I/O route, 10 concurrent keep-alive connections, {rounds} interleaved rounds of {seconds:.0f} s"
        " per server (every server gets the same Authorization header)"
    )
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec

    codec = TokenCodec(Settings.from_env({"JWT_SECRET": SECRET}))
    token = codec.issue("bench-user", "access", "kakao", session_id=uuid.uuid4().hex).token
    headers = {"Authorization": f"Bearer {token}"}
    env = {"ECO2_ENV": "test", "REDIS_URL": REDIS, "JWT_SECRET": SECRET, "LOG_LEVEL": "INFO"}
    servers: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    paths = {"baseline hello": "/"}
    try:
        port = free_port()
        proc, _ = start(baseline_cmd(port), {}, port, "/")
        servers.append(proc)
        ports["baseline hello"] = port
        for label, view in (("eco2 (auth + metrics + logs)", "on"), ("eco2, revocation view off (MGET)", "off")):
            port = free_port()
            proc, _ = start(
                eco2_cmd("ping", port, HERE / "_bench"),
                {**env, "ECO2_ROOT": str(HERE / "_bench"), "ECO2_REVOCATION_VIEW": view},
                port,
                "/health/readiness",
            )
            servers.append(proc)
            ports[label] = port
            paths[label] = "/api/v1/bench/ping"
        for label, port in ports.items():  # warm-up (the first authenticated request starts the view)
            load.run(port, paths[label], concurrency=10, total=500, headers=headers)
        time.sleep(0.3)
        results = interleaved(
            {label: (port, paths[label]) for label, port in ports.items()}, 10, seconds, rounds, headers
        )
    finally:
        for proc in servers:
            stop(proc)
    for label, runs in results.items():
        print("   " + summary(label, runs))
    base = results["baseline hello"]
    ratio = paired_ratio(results["eco2 (auth + metrics + logs)"], base, lambda r: r.rps)
    off = paired_ratio(results["eco2, revocation view off (MGET)"], base, lambda r: r.rps)
    print(f"   ratio {ratio:4.2f}x baseline req/s ({verdict(ratio, 0.9, True)}); view off: {off:4.2f}x")
    return {
        "hello req/s": load.median([r.rps for r in base]),
        "eco2 ping req/s": load.median([r.rps for r in results["eco2 (auth + metrics + logs)"]]),
        "eco2 ping, view off": load.median([r.rps for r in results["eco2, revocation view off (MGET)"]]),
    }


def users_me(env: dict[str, str], seconds: float, rounds: int, workers: str, token: str) -> dict[str, float]:
    print(
        f"\n3) GET /api/v1/users/me, real PostgreSQL + Redis, {workers} worker(s), {rounds} interleaved rounds of"
        f" {seconds:.0f} s per server and load"
    )
    headers = {"Authorization": f"Bearer {token}"}
    server_env = {**env, "DATABASE_POOL_SIZE": "10", "THREADS": "16", "WORKERS": workers}
    commands: tuple[tuple[str, Callable[[int], list[str]]], ...] = (
        ("plain", plain_users_cmd),
        ("eco2", functools.partial(eco2_cmd, "users")),
    )
    servers: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    path = "/api/v1/users/me"
    try:
        for label, cmd in commands:
            port = free_port()
            proc, _ = start(cmd(port), server_env, port, path, headers)
            servers.append(proc)
            ports[label] = port
            load.run(port, path, concurrency=50, total=1000, headers=headers)  # warm-up
        targets = {label: (port, path) for label, port in ports.items()}
        results = {in_flight: interleaved(targets, in_flight, seconds, rounds, headers) for in_flight in (50, 10, 1)}
    finally:
        for proc in servers:
            stop(proc)
    figures: dict[str, float] = {}
    for in_flight, runs in results.items():
        plain, ours = runs["plain"], runs["eco2"]
        print("   " + summary(f"plain, {in_flight} in flight", plain))
        print("   " + summary(f"eco2 users, {in_flight} in flight", ours))
        figures[f"plain {in_flight}"] = load.median([r.rps for r in plain])
        figures[f"eco2 {in_flight}"] = load.median([r.rps for r in ours])
        if in_flight == 1:
            ratio = paired_ratio(ours, plain, lambda r: r.pct(50))
            print(f"   p50 at 1 in flight: {ratio:4.2f}x plain ({verdict(ratio, 1.2, False)})")
            figures["p50 plain"] = load.median([r.pct(50) for r in plain])
            figures["p50 eco2"] = load.median([r.pct(50) for r in ours])
        else:
            ratio = paired_ratio(ours, plain, lambda r: r.rps)
            print(f"   req/s at {in_flight} in flight: {ratio:4.2f}x plain ({verdict(ratio, 0.9, True)})")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("cold", "throughput", "users"))
    parser.add_argument("--chart", action="store_true", help="write PNG charts into tests/benchmarks/results/")
    args = parser.parse_args()
    runs, seconds, rounds = (3, 2.0, 3) if args.quick else (5, 4.0, 5)
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
    s3 = llm = None
    try:
        if args.only in (None, "cold"):  # the images function's readiness asks S3 for its bucket
            sys.path.insert(0, str(ROOT))
            from tests.support.s3_server import start_s3_server

            s3 = start_s3_server()
            env.update(s3.env())
            # scan-worker and chat-worker as deployed: with a model key their start builds the
            # openai client (its calls would go to the stand-in; readiness does not reach it)
            import logging

            from tests.support.llm_server import LLMServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per readiness check
            llm = LLMServer()
            env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=llm.base_url)
        _, token = bench_user(env)
        if args.only in (None, "cold"):
            charts["cold start (s)"] = cold_starts(env, runs, token)
        if args.only in (None, "throughput"):
            charts["no-I/O route (req/s)"] = throughput(seconds, rounds)
        if args.only in (None, "users"):
            charts["users/me, 1 worker (req/s)"] = users_me(env, seconds, rounds, "1", token)
            if not args.quick:
                charts["users/me, 2 workers (req/s)"] = users_me(env, seconds, rounds, "2", token)
    finally:
        drop(url)
        if s3 is not None:
            s3.stop()
        if llm is not None:
            llm.close()
    if args.chart:
        import charts as charting

        print("   chart:", charting.write("framework", charts))


if __name__ == "__main__":
    main()
