"""One HTTP client for every publish target: retries, backoff, streaming bodies.

What is retried: connection failures and resets (also mid-upload), timeouts, 5xx, and 429
(waiting what Retry-After says, seconds or an HTTP date). Waits grow exponentially with full
jitter and are capped. Request bodies are either bytes or a file on disk that is streamed in
1 MiB blocks and re-opened for every attempt, so a retry sends the whole body again and
nothing is held in memory. Credentials travel in headers this module never logs: only the
method, the URL without query and the status are reported.
"""
from __future__ import annotations

import email.utils
import http.client
import random
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from buildctl.errors import UserError

BLOCK = 1 << 20
SEND_BLOCK = 256 << 10


class PublishError(UserError):
    """A target refused or kept failing (exit 1): the release is not (fully) published."""

    exit_code = 1


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_s: float = 0.2
    cap_s: float = 20.0
    timeout_s: float = 60.0
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.cap_s, self.base_s * (2 ** attempt)))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self):
        import json

        return json.loads(self.body or b"null")


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    events: list[str] = field(default_factory=list)  # "PUT /path -> 503 (retry)" etc.


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _public(url: str) -> str:
    """The URL as it may be shown: no userinfo, no query (signatures live there)."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    if u.port:
        host += f":{u.port}"
    return f"{u.scheme}://{host}{u.path}"


class Client:
    """A keep-alive connection per host, re-made after any failure."""

    def __init__(self, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.stats = Stats()
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    def _conn(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        c = self._conns.get(key)
        if c is None:
            if scheme == "https":
                c = http.client.HTTPSConnection(host, port, timeout=self.policy.timeout_s,
                                                context=ssl.create_default_context(),
                                                blocksize=BLOCK)
            else:
                c = http.client.HTTPConnection(host, port, timeout=self.policy.timeout_s,
                                               blocksize=BLOCK)
            self._conns[key] = c
        return c

    def _drop(self, key) -> None:
        c = self._conns.pop(key, None)
        if c is not None:
            c.close()

    @staticmethod
    def _send_file(conn: http.client.HTTPConnection, method: str, target: str,
                   headers: dict[str, str], path: Path, body_range) -> None:
        """Headers, then the file (or a slice) in SEND_BLOCK pieces (sendfile(2) measured no
        faster against wsgidav, and this also works over TLS)."""
        names = {k.lower() for k in headers}
        conn.putrequest(method, target, skip_host="host" in names,
                        skip_accept_encoding="accept-encoding" in names)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        offset, count = body_range or (0, int(headers["Content-Length"]))
        with open(path, "rb") as fh:
            src = _Slice(fh, offset, count)
            while chunk := src.read(SEND_BLOCK):
                conn.sock.sendall(chunk)
            if src.left:
                raise ConnectionError(f"{path}: file shrank while sending")

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes | None = None, body_file: Path | None = None,
                body_range: tuple[int, int] | None = None,
                sign: Callable[[str, str, dict[str, str]], None] | None = None) -> Response:
        """Send with retries; returns the first response that is not retryable (any status).

        ``body_range=(offset, length)`` sends only that slice of body_file (an S3 part).
        ``sign(method, url, headers)`` runs before every attempt (S3 signatures hold a time).
        Raises PublishError when every attempt failed.
        """
        u = urllib.parse.urlsplit(url)
        scheme = u.scheme or "http"
        port = u.port or (443 if scheme == "https" else 80)
        key = (scheme, u.hostname or "", port)
        target = u.path or "/"
        if u.query:
            target += "?" + u.query
        last = ""
        for attempt in range(self.policy.attempts):
            h = dict(headers or {})
            if body_file is not None:
                h["Content-Length"] = str(body_range[1] if body_range else
                                          Path(body_file).stat().st_size)
            elif body is not None:
                h["Content-Length"] = str(len(body))
            elif method in ("PUT", "POST", "PATCH"):
                h["Content-Length"] = "0"
            if sign:
                sign(method, url, h)
            wait = None
            self.stats.requests += 1
            try:
                conn = self._conn(*key)
                if body_file is not None:
                    self._send_file(conn, method, target, h, Path(body_file), body_range)
                    self.stats.bytes_sent += int(h["Content-Length"])
                else:
                    conn.request(method, target, body=body, headers=h)
                    self.stats.bytes_sent += len(body or b"")
                r = conn.getresponse()
                data = r.read()
                resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
                if r.will_close:
                    self._drop(key)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.stats.events.append(f"{method} {_public(url)} -> {last} (retry)")
            else:
                if resp.status == 429 or resp.status >= 500:
                    last = f"HTTP {resp.status}"
                    if resp.status in (429, 503):
                        wait = retry_after(resp.header("retry-after"))
                    self.stats.events.append(f"{method} {_public(url)} -> {resp.status} (retry)")
                else:
                    return resp
            if attempt + 1 == self.policy.attempts:
                break
            self.stats.retries += 1
            if wait is not None:
                self.sleep(min(wait, self.policy.max_retry_after_s))
            else:
                self.sleep(self.policy.backoff(attempt))
        raise PublishError(f"{method} {_public(url)}: gave up after {self.policy.attempts} "
                           f"attempts ({last})")


class _Slice:
    """length bytes of a file from offset, as a readable object (streamed, not loaded)."""

    def __init__(self, fh, offset: int, length: int):
        fh.seek(offset)
        self.fh, self.left = fh, length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.fh.read(n)
        self.left -= len(data)
        return data


def quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/")


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        p = p.strip("/")
        if p:
            out += "/" + quote_path(p)
    return out


