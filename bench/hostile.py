#!/usr/bin/env python3
"""Benchmark: how long a user waits for the one-line refusal of each hostile input.

The contract (issue 7) is "one line within a second" for the command a user types, so each
case of tests/hostile/cases.py runs here as its own `python -m buildctl ...` process
(interpreter start and imports included), unlike the test suite, which runs them in one worker
to stay fast. Prints the wall time per case and the median, 95th percentile and maximum, and
the import cost alone (`buildctl --version`) side by side as the floor.

  python bench/hostile.py [--sample N] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hostile.cases import CASES  # noqa: E402
from tests.hostile.world import make_world  # noqa: E402


def run(argv: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "buildctl", *argv], cwd=cwd, env=env, check=False,
                       capture_output=True, text=True, timeout=120)
    return time.perf_counter() - t0, r.returncode, r.stderr.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=0, help="run N random cases (default: all)")
    ap.add_argument("--markdown", type=Path, help="also write the summary table here")
    args = ap.parse_args()
    cases = CASES if not args.sample else random.Random(1).sample(CASES, args.sample)
    scratch = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    try:
        world = make_world(scratch / "_world")
        env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(scratch / "home"),
                   BUILDCTL_LOG_DIR=str(scratch / "logs"))
        floor = min(run(["--version"], world, env)[0] for _ in range(3))
        rows = []
        for c in cases:
            d = scratch / c.id
            shutil.copytree(world, d, symlinks=True,
                            ignore=lambda src, names: ["repos"] if Path(src) == world else [])
            for rel, content in c.files.items():
                p = d / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(content.encode() if isinstance(content, str) else content)
            if c.prepare:
                c.prepare(d)
            seconds, rc, err = run([a.replace("{d}", str(d)) for a in c.argv], d,
                                   dict(env, **c.env))
            rows.append((seconds, c.id, rc, err))
            print(f"{seconds:6.2f} s  exit {rc:<3} {c.id}", flush=True)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    times = sorted(r[0] for r in rows)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    slowest = max(rows)
    summary = (f"| cases | median | p95 | max (case) | `buildctl --version` |\n|---|---|---|---|---|\n"
               f"| {len(rows)} | {statistics.median(times):.2f} s | {p95:.2f} s | "
               f"{slowest[0]:.2f} s ({slowest[1]}) | {floor:.2f} s |\n")
    print("\n" + summary)
    if args.markdown:
        args.markdown.write_text(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
