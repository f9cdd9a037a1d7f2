"""A reverse proxy with fault injection in front of a real server (wsgidav, moto).

  python -m tests.publish.servers.faultproxy UPSTREAM_URL

Forwards every request to UPSTREAM (bodies streamed both ways) unless a fault rule (see
faults.py) answers it instead. Prints its port on stdout.
"""
from __future__ import annotations

import http.client
import sys
import urllib.parse

from tests.publish.servers.faults import FaultHandler, FaultServer, serve_forever

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection"}


class ProxyHandler(FaultHandler):
    upstream: tuple[str, int] = ("127.0.0.1", 0)

    def serve(self) -> None:
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP:
                    conn.putheader(k, v)
            conn.endheaders()
            left = self.body_length()
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                conn.send(chunk)
                left -= len(chunk)
                self._received += len(chunk)
            r = conn.getresponse()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            body = r.read()
            length = r.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self._status = r.status
        finally:
            conn.close()


def main() -> None:
    u = urllib.parse.urlsplit(sys.argv[1])
    ProxyHandler.upstream = (u.hostname, u.port)
    serve_forever(FaultServer(("127.0.0.1", 0), ProxyHandler))


if __name__ == "__main__":
    main()
