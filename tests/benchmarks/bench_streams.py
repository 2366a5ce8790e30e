"""Many SSE streams on one process (issue 12, "Many streams per pod").

The streams function runs exactly as its container does (`python -m eco2.serving.server
functions/streams/main.py`: gunicorn, one uvicorn worker) on the real Redis. The benchmark opens N
concurrent SSE clients (default 1,000; `--quick`: 200), one chat job and one user each, then feeds
every job's Redis stream at a fixed token rate (default 5 tokens/s per stream) for a while, ends
every job with `done` and checks that every stream got exactly its tokens, in order, and closed.

Figures, in one run:
- the server process's memory (RSS) before the clients, with every stream open, and its peak;
- Redis connections the server holds (CLIENT LIST, by its client name; peak while feeding);
- latency per token: XADD (the entry id's millisecond) -> frame received by the SSE client, and
  the same for K direct readers (each its own blocking XREAD on a sampled job's stream, the
  baseline); the added latency is SSE receive time minus direct receive time of the same token;
- the server's CPU while feeding.

Goal: 1,000 streams, <= 50 Redis connections, p99 added latency < 50 ms.

    python tests/benchmarks/bench_streams.py --quick      # 200 clients, 10 s
    python tests/benchmarks/bench_streams.py              # 1,000 clients, 30 s (a quiet machine)

Redis: ECO2_BENCH_REDIS_URL, else ECO2_TEST_REDIS_URL, else redis://127.0.0.1:6379/4. Only the
benchmark's own keys are written and deleted (no FLUSHDB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
SECRET = "bench-secret-0123456789-0123456789-012345"
REDIS_URL = os.environ.get("ECO2_BENCH_REDIS_URL") or os.environ.get("ECO2_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(q / 100 * len(data)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(master: int) -> int:
    """gunicorn's master forks one worker: the process that holds the streams."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children")
        found = children.read_text().split() if children.exists() else []
        if found:
            return int(found[0])
        time.sleep(0.1)
    raise SystemExit("the streams server forked no worker")


def redis_connections(client: redis.Redis, pid: int) -> int:
    """Connections of the server's worker process (eco2.serving.aio names them eco2-streams:<host>:<pid>)."""
    name = f"eco2-streams:{socket.gethostname()}:{pid}"
    return sum(1 for c in client.client_list() if c.get("name") == name)


@dataclass
class Stream:
    job: str
    user: str
    token: str
    received: dict[str, float] = field(default_factory=dict)  # entry id -> time.time() received
    seqs: list[int] = field(default_factory=list)
    done: bool = False
    closed: bool = False
    error: str = ""


async def follow(port: int, stream: Stream, opened: asyncio.Event, ready: list[int]) -> None:
    """A minimal EventSource over asyncio streams (HTTP/1.1, chunked)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(
            (
                f"GET /api/v1/chat/{stream.job}/events HTTP/1.1\r\nHost: bench\r\n"
                f"Cookie: s_access={stream.token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            stream.error = f"status {status}"
            return
        buffer = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                break
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            buffer += chunk[:-2]
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                fields = dict(line.split(": ", 1) for line in frame.decode().splitlines() if ": " in line)
                event = fields.get("event")
                if event == "token_recovery" and not opened.is_set():
                    ready[0] += 1
                    if ready[0] == ready[1]:
                        opened.set()
                elif event == "token":
                    stream.received[fields["id"]] = now
                    stream.seqs.append(int(json.loads(fields["data"])["seq"]))
                elif event == "done":
                    stream.done = True
        stream.closed = True
        writer.close()
    except Exception as exc:
        stream.error = f"{type(exc).__name__}: {exc}"


async def direct(url: str, key: str, out: dict[str, float], stop: asyncio.Event) -> None:
    """The baseline: a blocking XREAD of one job's stream, on a connection of its own."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, decode_responses=True, single_connection_client=True)
    last = "$"
    try:
        while not stop.is_set():
            found = await client.xread({key: last}, block=500, count=100)
            now = time.time()
            for _key, entries in found or []:
                for entry_id, _fields in entries:
                    out[entry_id] = now
                    last = entry_id
    finally:
        await client.aclose()


def feed(url: str, streams: list[Stream], rate: float, seconds: float, stop: threading.Event) -> int:
    """XADD one token per stream every 1/rate s, spread over 20 ms ticks; returns tokens written."""
    client = redis.Redis.from_url(url, decode_responses=True)
    tick = 0.02
    per_tick = len(streams) * rate * tick
    carry = 0.0
    seq = dict.fromkeys((s.job for s in streams), 0)
    index = 0
    written = 0
    started = time.monotonic()
    next_tick = started
    while time.monotonic() - started < seconds and not stop.is_set():
        carry += per_tick
        count, carry = int(carry), carry - int(carry)
        pipe = client.pipeline(transaction=False)
        for _ in range(count):
            stream = streams[index % len(streams)]
            index += 1
            seq[stream.job] += 1
            data = json.dumps({"content": f"t{seq[stream.job]} ", "seq": seq[stream.job]})
            pipe.xadd(f"chat:events:{stream.job}", {"event": "token", "data": data})
        if count:
            pipe.execute()
            written += count
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.monotonic()))
    client.close()
    return written


async def run(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 1024)), hard))
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec
    from functions.common.chatjobs import ChatJobs

    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    codec = TokenCodec(Settings.from_env({"ECO2_ENV": "test", "JWT_SECRET": SECRET}))
    port = free_port()
    env = {
        **os.environ,
        "ECO2_ENV": "test",
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": SECRET,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "ECO2_ROOT": str(ROOT),
    }
    log_fd, log_name = tempfile.mkstemp(prefix="bench-streams-", suffix=".log")
    server = subprocess.Popen(
        [sys.executable, "-m", "eco2.serving.server", "functions/streams/main.py"],
        cwd=ROOT,
        env=env,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        text=True,
    )
    streams: list[Stream] = []
    try:
        deadline = time.monotonic() + 30
        import requests

        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health/readiness", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the streams server did not start:\n" + Path(log_name).read_text())
            await asyncio.sleep(0.1)
        pid = worker_pid(server.pid)
        rss_idle, _ = rss_kb(pid)

        jobs = ChatJobs(store)
        for _ in range(args.clients):
            user = f"bench-{uuid.uuid4()}"
            job = f"bench{uuid.uuid4().hex}"
            jobs.create(job, user, "bench")
            streams.append(Stream(job, user, codec.issue(user, "access", "kakao").token))

        opened = asyncio.Event()
        ready = [0, len(streams)]
        gate = asyncio.Semaphore(100)

        async def open_one(stream: Stream) -> asyncio.Task[None]:
            async with gate:
                return asyncio.create_task(follow(port, stream, opened, ready))

        t0 = time.monotonic()
        tasks = [await open_one(s) for s in streams]
        try:
            await asyncio.wait_for(opened.wait(), timeout=60)
        except TimeoutError:
            errors = [s.error for s in streams if s.error]
            raise SystemExit(f"only {ready[0]}/{len(streams)} streams opened; errors: {errors[:5]}") from None
        connect_seconds = time.monotonic() - t0
        await asyncio.sleep(1.0)
        rss_open, _ = rss_kb(pid)
        conns_open = redis_connections(store, pid)

        sample = streams[: args.direct]
        direct_seen: dict[str, dict[str, float]] = {s.job: {} for s in sample}
        stop_direct = asyncio.Event()
        direct_tasks = [
            asyncio.create_task(direct(REDIS_URL, f"chat:events:{s.job}", direct_seen[s.job], stop_direct))
            for s in sample
        ]
        await asyncio.sleep(0.5)

        peak_conns = [conns_open]
        stop_feed = threading.Event()

        def watch() -> None:
            while not stop_feed.is_set():
                peak_conns[0] = max(peak_conns[0], redis_connections(store, pid))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        cpu_before = cpu_seconds(pid)
        fed_at = time.monotonic()
        written = await asyncio.to_thread(feed, REDIS_URL, streams, args.rate, args.seconds, stop_feed)
        fed_for = time.monotonic() - fed_at
        cpu_used = cpu_seconds(pid) - cpu_before
        rss_fed, rss_peak = rss_kb(pid)
        await asyncio.sleep(1.0)  # the last tokens arrive
        stop_feed.set()
        for s in streams:
            jobs.append(s.job, "done", {"status": "completed", "result": {"answer": "", "persistence": {}}})
        await asyncio.wait(tasks, timeout=30)
        stop_direct.set()
        await asyncio.gather(*direct_tasks, return_exceptions=True)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        keys = [k for s in streams for k in (f"chat:job:{s.job}", f"chat:events:{s.job}", f"streams:user:{s.user}")]
        for i in range(0, len(keys), 500):
            store.delete(*keys[i : i + 500])

    e2e = [(t - int(i.split("-")[0]) / 1000) * 1000 for s in streams for i, t in s.received.items()]
    base = [(t - int(i.split("-")[0]) / 1000) * 1000 for seen in direct_seen.values() for i, t in seen.items()]
    added = [
        (s.received[i] - direct_seen[s.job][i]) * 1000 for s in sample for i in s.received if i in direct_seen[s.job]
    ]
    received = sum(len(s.received) for s in streams)
    in_order = all(s.seqs == list(range(1, len(s.seqs) + 1)) for s in streams)
    return {
        "clients": args.clients,
        "rate_per_stream": args.rate,
        "seconds": round(fed_for, 1),
        "connect_seconds": round(connect_seconds, 2),
        "tokens_written": written,
        "tokens_received": received,
        "lossless_in_order": received == written and in_order,
        "streams_done_and_closed": sum(1 for s in streams if s.done and s.closed),
        "stream_errors": sorted({s.error for s in streams if s.error})[:5],
        "rss_idle_mb": round(rss_idle / 1024, 1),
        "rss_open_mb": round(rss_open / 1024, 1),
        "rss_fed_mb": round(rss_fed / 1024, 1),
        "rss_peak_mb": round(rss_peak / 1024, 1),
        "kb_per_stream": round((rss_open - rss_idle) / max(1, args.clients), 1),
        "redis_connections_open": conns_open,
        "redis_connections_peak": peak_conns[0],
        "server_cpu_percent_of_one_core": round(100 * cpu_used / fed_for, 1),
        "e2e_ms_p50": round(pct(e2e, 50), 2),
        "e2e_ms_p99": round(pct(e2e, 99), 2),
        "direct_ms_p50": round(pct(base, 50), 2),
        "direct_ms_p99": round(pct(base, 99), 2),
        "added_ms_p50": round(pct(added, 50), 2),
        "added_ms_p99": round(pct(added, 99), 2),
        "added_samples": len(added),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="tokens per second per stream")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the streams are fed")
    parser.add_argument("--direct", type=int, default=50, help="streams also read directly (the baseline)")
    parser.add_argument("--quick", action="store_true", help="200 clients for 10 s (a smoke run)")
    parser.add_argument("--chart", action="store_true", help="write a PNG chart into tests/benchmarks/results/")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.direct = min(args.clients, 200), min(args.seconds, 10.0), min(args.direct, 20)
    result = asyncio.run(run(args))
    goals = {
        "streams": (result["streams_done_and_closed"], f">= {args.clients}"),
        "redis connections": (result["redis_connections_peak"], "<= 50"),
        "added latency p99 (ms)": (result["added_ms_p99"], "< 50"),
    }
    print(f"bench_streams: {args.clients} SSE clients x {args.rate} tokens/s for {result['seconds']} s")
    for key, value in result.items():
        print(f"  {key:<32} {value}")
    met = (
        result["streams_done_and_closed"] == args.clients
        and result["lossless_in_order"]
        and result["redis_connections_peak"] <= 50
        and result["added_ms_p99"] < 50
    )
    for name, (value, goal) in goals.items():
        print(f"  goal {name:<27} {value} (goal {goal})")
    print("  goals met" if met else "  goals MISSED")
    print(json.dumps(result))
    if args.chart:
        import charts

        print("chart:", charts.write("streams", chart_panels(result)))


def chart_panels(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The printed figures, each beside its baseline (the direct readers, the goal, the idle server)."""
    return {
        "latency per token (ms)": {
            "baseline: direct p50": result["direct_ms_p50"],
            "SSE p50": result["e2e_ms_p50"],
            "added p50": result["added_ms_p50"],
            "baseline: direct p99": result["direct_ms_p99"],
            "SSE p99": result["e2e_ms_p99"],
            "added p99": result["added_ms_p99"],
            "baseline: goal added p99 < 50": 50,
        },
        "Redis connections of the server": {
            "baseline: goal ≤ 50": 50,
            "streams open": result["redis_connections_open"],
            "peak while feeding": result["redis_connections_peak"],
        },
        f"server RSS (MB), {result['clients']} streams": {
            "baseline: idle": result["rss_idle_mb"],
            "streams open": result["rss_open_mb"],
            "fed": result["rss_fed_mb"],
            "peak": result["rss_peak_mb"],
        },
    }


if __name__ == "__main__":
    main()
