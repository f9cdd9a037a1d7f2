"""A private git server over HTTPS on 127.0.0.1: git's own ``git http-backend`` (smart HTTP)
behind a small TLS server that demands HTTP Basic authentication with one user and token.
A self-signed certificate for 127.0.0.1 is made with openssl; clients trust it through
``GIT_SSL_CAINFO``.
"""
from __future__ import annotations

import base64
import http.server
import os
import ssl
import subprocess
import threading
from pathlib import Path

from tests.helpers.skips import tool


class HttpsGitServer:
    def __init__(self, root: Path, user: str, token: str) -> None:
        tool("openssl")
        self.root = root
        self.repos = root / "srv"
        self.repos.mkdir(parents=True)
        self.cert = root / "cert.pem"
        key = root / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                   check=True).stdout.strip()
        backend = os.path.join(exec_path, "git-http-backend")
        expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        repos = self.repos
        self.requests: list[tuple[str, bool]] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _serve(self) -> None:
                authorised = self.headers.get("Authorization") == expected
                requests.append((self.path, authorised))
                if not authorised:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {"GIT_PROJECT_ROOT": str(repos), "GIT_HTTP_EXPORT_ALL": "1",
                       "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": user,
                       "REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
                       "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                       "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
                out = subprocess.run([backend], input=body, capture_output=True, env=env).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode(errors="replace").split("\r\n"):
                    k, _, v = line.partition(": ")
                    if k.lower() == "status":
                        status = int(v.split()[0])
                    elif k:
                        headers.append((k, v))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, work_tree: Path, name: str) -> str:
        subprocess.run(["git", "clone", "-q", "--bare", str(work_tree), str(self.repos / name)],
                       check=True, capture_output=True)
        return f"https://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
