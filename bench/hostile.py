#!/usr/bin/env python3
"""Benchmark: how long a user waits for the one-line refusal of each hostile input.

The contract (issue 7) is "one line within a second" for the command a user types, so each
case of tests/hostile/cases.py runs here as its own `python -m buildctl ...` process
(interpreter start and imports included), unlike the test suite, which runs them in one worker
to stay fast. Prints wall and CPU time per case (CPU time is what an idle machine's wall time would be; on a
shared one the wall time mostly measures the queue), the median, 95th percentile and maximum,
and the interpreter's own start (`buildctl --version`) side by side as the floor.

  python bench/hostile.py [--sample N] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import os
import random
import resource
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


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(argv: list[str], cwd: Path, env: dict) -> tuple[float, float, int, str]:
    """Wall time and CPU time (user + system: what an idle machine's wall time would be)."""
    t0, c0 = time.perf_counter(), _cpu()
    r = subprocess.run([sys.executable, "-m", "buildctl", *argv], cwd=cwd, env=env, check=False,
                       capture_output=True, text=True, timeout=120)
    return time.perf_counter() - t0, _cpu() - c0, r.returncode, r.stderr.strip()


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
        floor = min(run(["--version"], world, env)[1] for _ in range(3))
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
            seconds, cpu, rc, err = run([a.replace("{d}", str(d)) for a in c.argv], d,
                                        dict(env, **c.env))
            rows.append((cpu, c.id, rc, seconds))
            print(f"{seconds:6.2f} s wall {cpu:6.2f} s cpu  exit {rc:<3} {c.id}", flush=True)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    times = sorted(r[0] for r in rows)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    slowest = max(rows)
    wall = statistics.median(r[3] for r in rows)
    summary = (f"| cases | CPU median | CPU p95 | CPU max (case) | wall median | "
               f"`buildctl --version` CPU |\n|---|---|---|---|---|---|\n"
               f"| {len(rows)} | {statistics.median(times):.2f} s | {p95:.2f} s | "
               f"{slowest[0]:.2f} s ({slowest[1]}) | {wall:.2f} s | {floor:.2f} s |\n")
    print("\n" + summary)
    if args.markdown:
        args.markdown.write_text(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
