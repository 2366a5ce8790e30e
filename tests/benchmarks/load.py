"""A small closed-loop HTTP load generator: N threads × keep-alive connections, bounded in count and time."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q / 100 * len(data)))]

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.rps:8.0f} req/s  p50 {self.pct(50):6.2f} ms  p99 {self.pct(99):6.2f} ms"
            f"  ({self.requests} requests, {self.errors} errors)"
        )


def run(
    port: int,
    path: str,
    *,
    concurrency: int,
    total: int,
    max_seconds: float = 60.0,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> Result:
    per_thread = max(1, total // concurrency)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    deadline = time.perf_counter() + max_seconds
    barrier = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        barrier.wait()
        for _ in range(per_thread):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers or {})
                response = conn.getresponse()
                response.read()
                if response.status != expect:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            latencies[i].append((time.perf_counter() - t0) * 1000)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    flat = [x for part in latencies for x in part]
    return Result(len(flat), sum(errors), seconds, flat)


def median(values: list[float]) -> float:
    return statistics.median(values)


def wrk(
    port: int, path: str, *, concurrency: int, seconds: int, headers: dict[str, str] | None = None
) -> Result | None:
    """The same measurement with wrk (C, so the load generator takes little CPU); None when absent."""
    import re
    import shutil
    import subprocess

    if shutil.which("wrk") is None:
        return None
    cmd = [
        "wrk",
        "-t",
        str(min(2, concurrency)),
        "-c",
        str(concurrency),
        "-d",
        f"{seconds}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # a Result whose percentiles are wrk's: latencies list holds p50 and p99 at the right ranks
    result = Result(total, errors, total / rps if rps else 0.0, [])
    result.pct = lambda q: ms("50") if q <= 50 else ms("99")  # type: ignore[method-assign]
    return result
