"""Whether the Hugging Face hub can be reached, decided in seconds rather than after retries."""

from __future__ import annotations

import os
import socket
import urllib.request
from urllib.parse import urlparse

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint can be reached within ``timeout`` seconds.

    The hub client retries a dead network (or a dead proxy) for ~25-50 s before failing; this
    probe makes the offline case fail at once. Without a proxy it opens a TCP connection to the
    endpoint; with ``HTTPS_PROXY`` / ``ALL_PROXY`` set (and the host not in ``NO_PROXY``) it asks
    the proxy to ``CONNECT`` to the endpoint and waits for its answer, with the same timeout.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = next((os.environ[v] for v in PROXY_VARIABLES if os.environ.get(v)), None)
    if proxy and not urllib.request.proxy_bypass(url.hostname):
        return _through_proxy(proxy, url.hostname, port, timeout)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _through_proxy(proxy: str, host: str, port: int, timeout: float) -> bool:
    """Whether the HTTP proxy ``proxy`` opens a tunnel to ``host:port`` within ``timeout`` seconds."""
    parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return True  # a SOCKS or otherwise unusual proxy: let the hub client try it
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 8080), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            status = conn.recv(64).split(b"\r\n", 1)[0].split()
            return len(status) >= 2 and status[1] == b"200"
    except OSError:
        return False
