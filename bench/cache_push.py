#!/usr/bin/env python3
"""Benchmark: `buildctl cache push` of an sstate tree to a local WebDAV store, then a no-op push.

Makes COUNT sstate-like objects (BitBake's ``xx/yy/sstate:...`` layout: COUNT/2 archives
with incompressible payloads, TOTAL MiB in all, each with its .siginfo), starts wsgidav on 127.0.0.1
and runs, as child processes:
  1. `buildctl cache push` into the empty store (every object sent);
  2. `buildctl cache push` again (nothing new: one PROPFIND listing). Target: under 5 s;
  3. reference: curl asking HEAD for every object over one kept-alive connection
     (what a sequential client needs just to learn that nothing is missing).

  python bench/cache_push.py [--count 20000] [--total-mib 1024] [--jobs 8] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_tree(root: Path, count: int, total_mib: int, seed: int = 11) -> tuple[int, int]:
    rng = random.Random(seed)
    each = max(1, (total_mib << 20) // max(1, count // 2))
    block = os.urandom(each + 4096)
    files = size = 0
    for i in range(count // 2):
        h = f"{rng.getrandbits(256):064x}"
        name = f"sstate:pkg{i % 900}:cortexa57-poky-linux:1.0:r0:cortexa57:11:{h}_package.tar.zst"
        d = root / h[:2] / h[2:4]
        d.mkdir(parents=True, exist_ok=True)
        off = rng.randrange(4096)
        (d / name).write_bytes(block[off:off + each])
        (d / (name + ".siginfo")).write_bytes(f"siginfo {h}\n".encode())
        files += 2
        size += each + len(h) + 9
    return files, size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_webdav(root: Path) -> tuple[subprocess.Popen, int]:
    tool = shutil.which("wsgidav")
    if not tool:
        sys.exit("wsgidav not installed (pip install wsgidav cheroot)")
    port = free_port()
    proc = subprocess.Popen([tool, "--host", "127.0.0.1", "--port", str(port), "--root", str(root),
                             "--auth", "anonymous", "--server", "cheroot", "--no-config", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("wsgidav did not start")
            time.sleep(0.1)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str], server: subprocess.Popen | None = None, **kw) -> tuple[float, str]:
    """Run argv; print wall time, its CPU and the server's CPU meanwhile (on a shared machine
    the CPU figures are what an idle machine's wall time would be)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv0 = cpu_of(server.pid) if server else 0.0
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    dt = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    srv = cpu_of(server.pid) - srv0 if server else 0.0
    return dt, f"[client CPU {cpu:.2f}s, server CPU {srv:.2f}s] {proc.stdout.strip()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--total-mib", type=int, default=1024)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cache-push-", dir=args.workdir))
    server = None
    try:
        sstate, dav = work / "sstate", work / "dav"
        dav.mkdir()
        t0 = time.monotonic()
        files, size = make_tree(sstate, args.count, args.total_mib)
        print(f"tree: {files} files, {size / 2**20:.0f} MiB ({time.monotonic() - t0:.1f}s to make)")
        server, port = start_webdav(dav)
        url = f"http://127.0.0.1:{port}/sstate"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "buildctl", "cache", "push", str(sstate), url,
               "--jobs", str(args.jobs)]
        first, out1 = timed(cmd, server, env=env)
        print(f"buildctl cache push (empty store)  {first:7.2f}s  {out1}")
        noop, out2 = timed(cmd, server, env=env)
        print(f"buildctl cache push (nothing new)  {noop:7.2f}s  {out2}  "
              f"[target < 5 s: {'met' if noop < 5 else 'MISSED'}]")
        if shutil.which("curl"):
            cfg = work / "curl.cfg"
            with open(cfg, "w") as fh:
                for p in sorted(sstate.rglob("sstate:*")):
                    fh.write(f'url = "{url}/{p.relative_to(sstate).as_posix()}"\n'
                             'output = "/dev/null"\n')
            ref, out3 = timed(["curl", "-s", "-I", "-K", str(cfg)], server)
            print(f"reference: curl HEAD of every object, one connection  {ref:7.2f}s  {out3}")
        print(f"cpus: {os.cpu_count()}, jobs: {args.jobs}, load average: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
