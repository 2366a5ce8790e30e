"""The scan burst's light LLM stand-in (tests/benchmarks/llm_standin.py) answers the openai client as
the test suite's server does: the classification for a message with a photo, the answer otherwise,
after its delays, on keep-alive connections, and counts both."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from tests.support.llm_server import Script

STANDIN = Path(__file__).resolve().parents[1] / "benchmarks" / "llm_standin.py"


@pytest.fixture
def standin() -> Iterator[tuple[str, str]]:
    proc = subprocess.Popen([sys.executable, str(STANDIN), "0.2", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base_url, calls_url = proc.stdout.readline().split()
    yield base_url, calls_url
    proc.terminate()
    proc.wait(10)


def test_the_two_calls_of_a_scan(standin: tuple[str, str]) -> None:
    base_url, calls_url = standin
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    photo = [
        {"type": "text", "text": "분류해 주세요"},
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/a.jpg"}},
    ]
    started = time.monotonic()
    vision = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": photo}])
    took = time.monotonic() - started
    answers = [
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "버리는 법"}])
        for _ in range(3)  # one connection, kept alive
    ]
    script = Script()
    assert json.loads(vision.choices[0].message.content or "") == script.classification
    assert took >= 0.2  # the vision delay
    assert all(json.loads(a.choices[0].message.content or "") == script.answer for a in answers)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    assert requests.get(calls_url, timeout=5).json() == {"vision": 1, "answer": 3}
    client.close()
