#!/usr/bin/env python3
"""Benchmark: publish a 4-board bundle (about 1 GiB) to a local WebDAV server, buildctl vs curl.

Generates a bundle directory in the release layout (release/<product>/<version>/
<board>-release/ with a disk image, a .mender-sized file and small metadata per board, a
release.json and a SHA256SUMS), starts wsgidav (cheroot) on 127.0.0.1, then in the same run:
  buildctl: a child process loads the bundle's plan and runs the WebDAV publisher (MKCOL, HEAD,
            PUT streamed from disk, PROPFIND check), as `buildctl publish` does after verifying;
  curl:     `curl -T FILE URL` for the same files, one process per file, after `curl -X MKCOL`
            for each collection (what a shell script would do).
Each side uploads into its own empty collection; who goes first alternates per round. Wall
time, throughput (bundle bytes / wall) and the peak RSS of the child (wait4; for curl the
largest of its processes) are printed side by side.
Bundle verification (`release verify`) is not part of the timing.

  python bench/publish.py [--size-mib 1024] [--workdir DIR] [--rounds 2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ("raspberrypi4", "qemux86-64", "imx8mm-evk", "beaglebone")


def make_bundle(dest: Path, total_mib: int) -> Path:
    """4 boards: a disk image (70%) and a .mender (28%) each, plus small text files."""
    bundle = dest / "release" / "demo" / "1.0"
    per_board = (total_mib << 20) // len(BOARDS)
    seed = os.urandom(1 << 20)
    files = []
    for n, b in enumerate(BOARDS):
        d = bundle / f"{b}-release"
        d.mkdir(parents=True)
        for name, size in ((f"core-image-{b}.wic.zst", per_board * 70 // 100),
                           (f"core-image-{b}.mender", per_board * 28 // 100)):
            p = d / name
            with open(p, "wb") as fh:
                left, i = size, 0
                while left > 0:
                    block = hashlib.sha256(f"{b}{name}{i}".encode()).digest() + seed
                    fh.write(block[:left])
                    left -= len(block[:left])
                    i += 1
            files.append(p)
        for name in ("core-image.manifest", "sbom.spdx.json", "cves.json"):
            p = d / name
            p.write_text(json.dumps({"board": b, "file": name, "n": n}) * 200)
            files.append(p)
    entries = []
    for p in files:
        rel = p.relative_to(bundle).as_posix()
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while c := fh.read(1 << 20):
                h.update(c)
        entries.append({"path": rel, "sha256": h.hexdigest(), "size": p.stat().st_size,
                        "kind": "other", "board": rel.split("/")[0]})
    rel_json = {"format_version": 1, "product": "demo", "version": "1.0", "files": entries,
                "boards": [{"board": b, "variant": "release", "dir": f"{b}-release"}
                           for b in BOARDS], "lock": {"poky": "0" * 40}, "builder": {}}
    (bundle / "release.json").write_text(json.dumps(rel_json, indent=2, sort_keys=True))
    sums = [(e["path"], e["sha256"]) for e in entries]
    meta = hashlib.sha256((bundle / "release.json").read_bytes()).hexdigest()
    sums.append(("release.json", meta))
    (bundle / "SHA256SUMS").write_text("".join(f"{s}  {p}\n" for p, s in sorted(sums)))
    return bundle


def child(bundle: str, url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from buildctl.publish import webdav
    from buildctl.publish.http import Client
    from buildctl.publish.plan import load_plan
    from buildctl.publish.targets import Target

    plan = load_plan(Path(bundle))
    client = Client()
    rep = webdav.publish(Target("bench", "webdav", url), plan, client)
    client.close()
    assert rep.ok and all(f.verified for f in rep.files)
    assert rep.bytes_sent == plan.total_bytes




def timed(argv: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(argv[:3])}... exited {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss


def curl_upload(bundle: Path, url: str) -> tuple[float, int]:
    os.sync()
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    dirs = sorted({p.parent.relative_to(bundle).as_posix() for p in files} - {"."})
    peak, t0 = 0, time.perf_counter()
    for d in ["", *dirs]:
        _, rss = timed(["curl", "-sS", "-o", "/dev/null", "-X", "MKCOL",
                        f"{url}/{d}/" if d else f"{url}/"])
        peak = max(peak, rss)
    for p in files:
        rel = p.relative_to(bundle).as_posix()
        _, rss = timed(["curl", "-sS", "-f", "-o", "/dev/null", "-T", str(p), f"{url}/{rel}"])
        peak = max(peak, rss)
    return time.perf_counter() - t0, peak


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    work = Path(tempfile.mkdtemp(prefix="bench-publish-", dir=a.workdir))
    dav = None
    try:
        bundle = make_bundle(work / "src", a.size_mib)
        total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
        root = work / "dav"
        root.mkdir()
        port = free_port()
        dav = subprocess.Popen([shutil.which("wsgidav") or "wsgidav", "-H", "127.0.0.1", "-p",
                                str(port), "-r", str(root), "--auth", "anonymous", "--server",
                                "cheroot", "--no-config", "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        print(f"bundle: {len(BOARDS)} boards, {total / (1 << 20):.0f} MiB; wsgidav on {base}; "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"{'round':>5} {'tool':<10} {'wall s':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
        ratios, walls = [], {"buildctl": 0.0, "curl": 0.0}
        for r in range(1, a.rounds + 1):
            def ours():
                os.sync()  # the other side's writes are not flushed on our time
                return timed([sys.executable, str(Path(__file__).resolve()), "--child",
                              str(bundle), f"{base}/buildctl{r}"])
            if r % 2:  # alternate who goes first
                (bw, brss), (cw, crss) = ours(), curl_upload(bundle, f"{base}/curl{r}")
            else:
                (cw, crss), (bw, brss) = curl_upload(bundle, f"{base}/curl{r}"), ours()
            for tool, w, rss in (("buildctl", bw, brss), ("curl -T", cw, crss)):
                print(f"{r:>5} {tool:<10} {w:>8.2f} {total / w / (1 << 20):>8.1f} "
                      f"{rss / 1024:>13.1f}")
            ratios.append(cw / bw)
            walls["buildctl"] += bw
            walls["curl"] += cw
            for side in (f"buildctl{r}", f"curl{r}"):
                shutil.rmtree(root / side, ignore_errors=True)
        print("buildctl throughput / curl throughput per round: "
              + ", ".join(f"{x:.2f}" for x in ratios))
        print(f"over all rounds: {walls['curl'] / walls['buildctl']:.2f}, median "
              f"{sorted(ratios)[len(ratios) // 2]:.2f} (target >= 0.80; RSS target < 150 MiB)")
    finally:
        if dav:
            dav.terminate()
            dav.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
