"""A small LAVA server for the tests, speaking the part of LAVA's REST API v0.2 buildctl uses.

POST /api/v0.2/jobs/ takes {"definition": YAML} (with `Authorization: Token <token>`) and
answers 201 {"message", "job_ids"}; GET /api/v0.2/jobs/<id>/ reports `state` (Submitted,
Running, Finished) and `health` (Unknown, Complete, Incomplete); GET .../tests/ lists the
test cases, paginated ({"count", "next", "previous", "results"}) like the real server.

As its "device" it runs the job's inline test definition steps in a local shell with a
`lava-test-case` command that records the result, so the steps buildctl writes are executed
for real (on this host instead of a board).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

PAGE = 2  # small pages, so that clients must follow `next`

RECORDER = """#!/bin/sh
# lava-test-case NAME --result RESULT
echo "$1 $3" >> "$LAVA_RESULTS"
"""


class LavaServer:
    def __init__(self, token: str, *, health: str = "Complete", polls_until_finished: int = 2):
        self.token = token
        self.health = health
        self.polls = polls_until_finished
        self.jobs: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._dir = tempfile.TemporaryDirectory()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Token {server.token}":
                    self._send(401, {"detail": "Invalid token."})
                    return False
                return True

            def do_POST(self):
                server.requests.append(("POST", self.path))
                if not self._authorised():
                    return
                if self.path != "/api/v0.2/jobs/":
                    return self._send(404, {"detail": "Not found."})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                job_id = 100 + len(server.jobs)
                server.jobs[job_id] = {"definition": body["definition"], "polls": 0, "results": None,
                                       "log": None}
                self._send(201, {"message": "job(s) successfully submitted", "job_ids": [job_id]})

            def do_GET(self):
                server.requests.append(("GET", self.path))
                if not self._authorised():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] != ["api", "v0.2", "jobs"] or len(parts) < 4 or int(parts[3]) not in server.jobs:
                    return self._send(404, {"detail": "Not found."})
                job_id = int(parts[3])
                job = server.jobs[job_id]
                if len(parts) == 4:
                    job["polls"] += 1
                    if job["polls"] < server.polls:
                        return self._send(200, {"id": job_id, "state": "Running", "health": "Unknown"})
                    if job["results"] is None:
                        job["results"], job["log"] = server.run_job(job["definition"])
                    return self._send(200, {"id": job_id, "state": "Finished", "health": server.health})
                if parts[4:] == ["logs"]:
                    data = yaml.safe_dump(job["log"] or [], sort_keys=False).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/yaml")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if parts[4:] == ["tests"]:
                    page = int(self.path.partition("page=")[2] or 1)
                    rows = job["results"] or []
                    chunk = rows[(page - 1) * PAGE: page * PAGE]
                    base = f"http://{self.headers['Host']}/api/v0.2/jobs/{job_id}/tests/"
                    nxt = f"{base}?page={page + 1}" if page * PAGE < len(rows) else None
                    return self._send(200, {"count": len(rows), "next": nxt, "previous": None,
                                            "results": chunk})
                self._send(404, {"detail": "Not found."})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def run_job(self, definition: str) -> tuple[list[dict], list[dict]]:
        """The results of the job (lava's own boot result, then the test definition's cases,
        each with the log lines its step wrote) and the log."""
        job = yaml.safe_load(definition)
        log = [{"dt": "2026-01-01T00:00:00", "lvl": "info", "msg": "start: boot"},
               {"dt": "2026-01-01T00:00:01", "lvl": "target", "msg": "box login: root"}]
        rows = [{"name": "auto-login-action", "suite": "lava", "result": "pass",
                 "log_start_line": 1, "log_end_line": 2}]
        if self.health != "Complete":
            return rows, log
        work = Path(self._dir.name)
        (work / "bin").mkdir(exist_ok=True)
        rec = work / "bin" / "lava-test-case"
        rec.write_text(RECORDER)
        rec.chmod(0o755)
        results = work / "results.txt"
        env = dict(os.environ, PATH=f"{work / 'bin'}:{os.environ['PATH']}", LAVA_RESULTS=str(results))
        for action in job["actions"]:
            for d in action.get("test", {}).get("definitions", []):
                for step in d["repository"]["run"]["steps"]:
                    results.write_text("")
                    start = len(log) + 1
                    log.append({"dt": "2026-01-01T00:00:02", "lvl": "input", "msg": step})
                    # like the real dispatcher, the shell traces what it runs (sh -x)
                    out = subprocess.run(["sh", "-xc", step], env=env, cwd=work, timeout=60,
                                         capture_output=True, text=True)
                    for line in (out.stdout + out.stderr).splitlines():
                        log.append({"dt": "2026-01-01T00:00:02", "lvl": "target", "msg": line})
                    for line in results.read_text().splitlines():
                        name, result = line.split()
                        rows.append({"name": name, "suite": f"1_{d['name']}", "result": result,
                                     "log_start_line": start, "log_end_line": len(log)})
        return rows, log

    def __enter__(self) -> "LavaServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
        self._dir.cleanup()
