"""Helpers of the cache tests: a `buildctl cache hashserv` process and a runner process that
talks to it through BitBake's own client library."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cache.conftest import free_port
from tests.conftest import ROOT

DEMO = ROOT / "products" / "demo.yml"
METHOD = "oe.sstatesig.OEOuthashBasic"

# what one runner does: report (or look up) hashes through BitBake's own client API
RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import hashserv
client = hashserv.create_client(sys.argv[2])
out = {}
for op in json.loads(sys.argv[3]):
    if op[0] == "report":
        try:
            r = client.report_unihash(op[1], op[2], op[3], op[4])
            out["report:" + op[1]] = r.get("unihash") if r else None
        except Exception as exc:
            out["report:" + op[1]] = "error: " + exc.__class__.__name__
    else:
        out["get:" + op[1]] = client.get_unihash(op[2], op[1])
client.close()
print(json.dumps(out))
"""


class Server:
    def __init__(self, bitbake: Path, db: Path, *extra: str):
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "buildctl", "cache", "hashserv", str(DEMO), "--bitbake",
             str(bitbake), "--database", str(db), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        assert "bitbake-hashserv on 127.0.0.1" in line, line + self.proc.stderr.read()
        self.line = line
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def runner(bitbake: Path, address: str, ops: list) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(bitbake / "lib"), address,
                           json.dumps(ops)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


