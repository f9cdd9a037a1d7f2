"""Fault injection shared by the test servers (run as separate processes).

Rules are posted as JSON to ``POST /__faults`` (a list; replaces the current rules) and each
applies to at most ``count`` requests that match ``method`` and the ``path`` regex:

  {"action": "status", "status": 503, "headers": {"Retry-After": "1"}}  answer this instead
  {"action": "reset", "after": 65536}   read that many body bytes, then reset the connection
  {"action": "slow", "delay": 0.5}      wait, then handle the request normally
  {"action": "lie"}                     (artifactory server) report a wrong sha256 for the file

``GET /__log`` returns every request handled: method, path, status, body bytes received.
"""
from __future__ import annotations

import json
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler):
        super().__init__(addr, handler)
        self.rules: list[dict] = []
        self.log: list[dict] = []
        self.lock = threading.Lock()

    def take(self, method: str, path: str, *, actions=("status", "reset", "slow")) -> dict | None:
        with self.lock:
            for r in self.rules:
                if r.get("action") not in actions or r.get("count", 1) <= 0:
                    continue
                if r.get("method", method) != method or not re.search(r.get("path", ""), path):
                    continue
                r["count"] = r.get("count", 1) - 1
                return dict(r)
        return None


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, fmt, *args):  # quiet
        pass

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # -- helpers for subclasses
    def body_length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def read_body(self) -> bytes:
        n = self.body_length()
        return self.rfile.read(n) if n else b""

    def reply(self, status: int, body: bytes = b"", headers: dict | None = None,
              ctype: str = "application/json") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def reply_json(self, status: int, data, headers: dict | None = None, ctype="application/json"):
        self.reply(status, json.dumps(data).encode(), headers, ctype)

    # -- dispatch
    def _dispatch(self):
        self._status = None
        self._received = 0
        path = self.path.split("?", 1)[0]
        if path == "/__faults" and self.command == "POST":
            with self.server.lock:
                self.server.rules = json.loads(self.read_body() or b"[]")
            return self.reply_json(200, {"ok": True})
        if path == "/__log" and self.command == "GET":
            with self.server.lock:
                return self.reply_json(200, self.server.log)
        rule = self.server.take(self.command, self.path)
        if rule and rule["action"] == "slow":
            time.sleep(float(rule.get("delay", 0.5)))
            rule = None
        if rule and rule["action"] == "reset":
            return self._reset(int(rule.get("after", 0)))
        if rule and rule["action"] == "status":
            self.read_body()
            self.reply_json(rule.get("status", 500),
                            {"errors": [{"status": rule.get("status", 500),
                                         "message": "injected fault"}]},
                            rule.get("headers"))
        else:
            self.serve()
        with self.server.lock:
            self.server.log.append({"method": self.command, "path": self.path,
                                    "status": self._status, "received": self._received})

    def _reset(self, after: int) -> None:
        left = min(after, self.body_length())
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
        with self.server.lock:
            self.server.log.append({"method": self.command, "path": self.path, "status": "reset",
                                    "received": after})
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        self.wfile = _Sink()

    def serve(self) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError


class _Sink:
    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


def serve_forever(server: FaultServer) -> None:
    """Print the port on stdout (the fixture reads it) and serve until killed."""
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)
