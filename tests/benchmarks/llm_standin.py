"""A light OpenAI-compatible stand-in for the scan burst (bench_scan.py): the two calls of a scan,
answered with the test suite's scripted content (tests/support/llm_server.py) after fixed delays,
on one asyncio loop.

The real model is remote: its work costs the cluster's nodes nothing. Here the stand-in shares the
2 cores with every process under test, so its own cost per call is kept small. The test suite's
server (werkzeug, a thread per request, every request body recorded) is the right tool for tests
that script failures and read prompts back; in the burst it cost ~1 ms of CPU per call, 0.43 s per
burst of 400 calls. `python tests/benchmarks/llm_standin.py --measure` compares the two servers'
CPU per call in one run.

    POST /v1/chat/completions   a message with an `image_url` part -> the classification, else the answer
    GET  /v1/models             one model (what a readiness check may ask)
    GET  /calls                 {"vision": n, "answer": n}
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class StandIn:
    def __init__(self, vision_delay: float, answer_delay: float) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.support.llm_server import Script

        script = Script()
        self.content = {
            "vision": json.dumps(script.classification, ensure_ascii=False),
            "answer": json.dumps(script.answer, ensure_ascii=False),
        }
        self.delays = {"vision": vision_delay, "answer": answer_delay}
        self.counts = {"vision": 0, "answer": 0}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 with keep-alive: one request after another on the connection, as a client pool sends them."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, _, rest = head.decode("latin-1").partition("\r\n")
                method, path, _version = line.split(" ", 2)
                headers = {}
                for field in rest.split("\r\n"):
                    name, sep, value = field.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload = await self.answer(method, path, body)
                data = json.dumps(payload, ensure_ascii=False).encode()
                head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                writer.write(head.encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        finally:
            writer.close()

    async def answer(self, method: str, path: str, body: bytes) -> tuple[str, Any]:
        if method == "GET" and path == "/calls":
            return "200 OK", self.counts
        if method == "GET" and path == "/v1/models":
            model = {"id": "gpt-4o-mini", "object": "model", "owned_by": "stand-in"}
            return "200 OK", {"object": "list", "data": [model]}
        if method != "POST" or path != "/v1/chat/completions":
            return "404 Not Found", {"error": {"message": "not found"}}
        request = json.loads(body)
        kind = "vision" if _has_image(request) else "answer"
        self.counts[kind] += 1
        await asyncio.sleep(self.delays[kind])
        return "200 OK", {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "stand-in"),
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": self.content[kind]}}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


def _has_image(body: dict[str, Any]) -> bool:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            return True
    return False


async def main(vision: float, answer: float) -> None:
    stand_in = StandIn(vision, answer)
    server = await asyncio.start_server(stand_in.serve, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1 http://127.0.0.1:{port}/calls", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def measure(calls: int = 400, in_flight: int = 200) -> None:
    """CPU per call of both stand-ins: `calls` answer calls, `in_flight` at once, from the openai client."""
    import subprocess
    import threading

    import openai

    sys.path.insert(0, str(ROOT))
    from tests.support.llm_server import LLMServer

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(base_url: str, pid: int) -> float:
        client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        gate = threading.Semaphore(in_flight)

        def one() -> None:
            with gate:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

        before = cpu(pid)
        threads = [threading.Thread(target=one) for _ in range(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
        return (cpu(pid) - before) / calls * 1000

    light = subprocess.Popen([sys.executable, __file__, "0", "0.05"], stdout=subprocess.PIPE, text=True)
    assert light.stdout is not None
    base = light.stdout.readline().split()[0]
    # the test suite's server in this process would count this process's client threads too: in its own
    full = subprocess.Popen(
        [sys.executable, "-c", _FULL.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert full.stdout is not None
    full_base = full.stdout.readline().strip()
    try:
        for round_ in range(3):
            a, b = run(base, light.pid), run(full_base, full.pid)
            print(f"round {round_ + 1}: CPU per call  light {a:.3f} ms   tests/support/llm_server.py {b:.3f} ms")
    finally:
        for proc in (light, full):
            proc.terminate()
            proc.wait(10)
    del LLMServer


_FULL = """
import logging, sys, signal, threading
sys.path.insert(0, {root!r})
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # as bench_scan.py ran it
from tests.support.llm_server import LLMServer
server = LLMServer()
server.reset(answer_delay=0.05)
print(server.base_url, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
"""


if __name__ == "__main__":
    if sys.argv[1:] == ["--measure"]:
        measure()
    else:
        asyncio.run(main(float(sys.argv[1]), float(sys.argv[2])))
