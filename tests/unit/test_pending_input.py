"""The revocation view's 'anything unread on the feed?' check (poll(2), zero timeout, GIL held;
what holding the GIL is worth is measured by tests/benchmarks/bench_framework.py)."""

from __future__ import annotations

import os
import socket

from eco2.core.security import _poll_now


def test_it_sees_unread_bytes_end_of_file_and_a_bad_descriptor() -> None:
    pending = _poll_now()
    ours, peer = socket.socketpair()
    try:
        assert pending(ours.fileno()) is False  # nothing arrived
        peer.send(b"invalidate")
        assert pending(ours.fileno()) is True  # unread bytes
        ours.recv(100)
        assert pending(ours.fileno()) is False  # read: nothing left
        peer.close()
        assert pending(ours.fileno()) is True  # end of file: the feed is gone
    finally:
        ours.close()
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    assert pending(fd) is True  # a closed descriptor answers "not current"
