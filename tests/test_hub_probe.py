"""The hub probe honours proxies and gives up in seconds (a dead or silent proxy included)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from adapruner.models.hub import hub_reachable


def serve(reply: bytes | None):
    """A local 'proxy' that answers every CONNECT with ``reply`` (None: accepts and stays silent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def loop():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(1024)
            if reply is not None:
                conn.sendall(reply)
            time.sleep(5)
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return server


@pytest.mark.parametrize("reply, expected", [(b"HTTP/1.1 200 Connection established\r\n\r\n", True),
                                             (b"HTTP/1.1 403 Forbidden\r\n\r\n", False), (None, False)])
def test_a_proxy_is_asked_and_a_silent_one_gives_up_in_seconds(monkeypatch, reply, expected):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server = serve(reply)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    t = time.perf_counter()
    assert hub_reachable(timeout=1.0) is expected
    assert time.perf_counter() - t < 3
    server.close()


def test_a_dead_proxy_is_unreachable_at_once(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    t = time.perf_counter()
    assert hub_reachable(timeout=1.0) is False
    assert time.perf_counter() - t < 2
