"""Request ids (and dedupe claim tokens) come from the process's `random` generator, not
os.urandom: they must only be unique, also across the worker processes gunicorn forks."""

from __future__ import annotations

import os
import random

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from eco2.core.runtime import Runtime


def new_id() -> str:
    request = Request(EnvironBuilder(path="/").get_environ())
    return Runtime._request_id(None, request)  # type: ignore[arg-type]


def test_request_ids_are_32_hex_digits_and_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_worker_draws_other_ids_than_its_parent() -> None:
    """random reseeds in a forked child (os.register_at_fork), so two workers never share a sequence."""
    random.seed(1234)  # parent and child would start from the same state without the reseed
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its first ids, then leave without running pytest's teardown
        os.write(write, " ".join(new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    parent = [new_id() for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)


def test_a_given_request_id_is_kept() -> None:
    request = Request(EnvironBuilder(path="/", headers={"X-Request-ID": "abc-12345"}).get_environ())
    assert Runtime._request_id(None, request) == "abc-12345"  # type: ignore[arg-type]
