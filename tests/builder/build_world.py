"""Shared pieces of the docker build tests: a fixture world and a one-call build."""
from __future__ import annotations

import http.server
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from buildctl.builder.caches import CacheSettings
from buildctl.builder.orchestrate import Build, BuildRequest
from buildctl.builder.progress import PlainView
from buildctl.builder.runner import BoardJob
from buildctl.builder.runtime import get_runtime

from build_fixtures import make_bsp, make_poky, repos_of, write_kas

MACHINES = {"boarda": "cortexa53", "boardb": "cortexa53", "boardc": "cortexa7"}


@dataclass
class World:
    root: Path
    poky: tuple
    bsp: tuple

    def job(self, board: str, local_conf: str = "") -> BoardJob:
        kas = write_kas(self.root / "composed" / f"{board}.yml", board, MACHINES[board],
                        self.poky, self.bsp, local_conf=local_conf)
        return BoardJob(board, board, "release", kas, repos_of(self.poky, self.bsp),
                        tune=MACHINES[board])

    def caches(self, **kw) -> CacheSettings:
        c = self.root / "cache"
        return CacheSettings(sstate_dir=c / "sstate", dl_dir=c / "downloads",
                             repo_ref_dir=c / "git", **kw)


def make_world(tmp: Path) -> World:
    os.chmod(tmp, 0o755)  # the build user inside the container must reach the fixtures
    for p in tmp.parents:
        if str(p).startswith("/tmp/") and p.stat().st_uid == os.getuid():
            os.chmod(p, p.stat().st_mode | 0o055)
    src = tmp / "src"
    return World(tmp, make_poky(src), make_bsp(src, MACHINES))


def run_build(world: World, jobs: list[BoardJob], image: str | None, *, caches=None,
              owner=(1000, 1000), runtime="docker", out_dir: Path | None = None, **kw):
    req = BuildRequest(product="demo", variant="release", jobs=jobs,
                       out_dir=out_dir or world.root / "out", owner=owner, **kw)
    b = Build(req, get_runtime(runtime, image), caches or world.caches(),
              PlainView([j.name for j in jobs], every=60))
    return b, b.run()


class Server:
    """An HTTP server on 127.0.0.1 serving one file; counts requests."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                body = b"source tarball\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
