#!/usr/bin/env python3
"""buildctl's own time around a no-op bitbake, per board, with a warm image and caches.

Measures what buildctl adds to every board: container start (docker), kas checkout from the
warm git mirrors (KAS_REPO_REF_DIR), bitbake with nothing to do (the test suite's stand-in
bitbake, all tasks current), report and deploy collection. Runs 1 and 8 boards; the first pass
warms caches and is not counted. Target: under 3 s per board.

    DOCKER_HOST=unix:///run/buildctl-test-docker/docker.sock python bench/build_overhead.py
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "builder")]

from buildctl.builder.caches import CacheSettings  # noqa: E402
from buildctl.builder.image import ImageSpec, ensure_image  # noqa: E402
from buildctl.builder.orchestrate import Build, BuildRequest  # noqa: E402
from buildctl.builder.progress import ProgressView  # noqa: E402
from buildctl.builder.runner import BoardJob  # noqa: E402
from buildctl.builder.runtime import get_runtime  # noqa: E402
from buildctl.builder.runtime.docker import docker_client  # noqa: E402
from build_fixtures import make_bsp, make_poky, repos_of, write_kas  # noqa: E402


def run(root: Path, boards: int, image: str, jobs: int, runtime: str):
    src = root / "src"
    machines = {f"bench{i}": "cortexa53" for i in range(8)}
    if not (src / "poky").exists():
        run.world = (make_poky(src), make_bsp(src, machines))
    poky, bsp = run.world
    job_list = []
    for m in list(machines)[:boards]:
        kas = write_kas(root / "composed" / f"{m}.yml", m, "cortexa53", poky, bsp)
        job_list.append(BoardJob(m, m, "release", kas, repos_of(poky, bsp), tune="cortexa53"))
    caches = CacheSettings(sstate_dir=root / "cache/sstate", dl_dir=root / "cache/dl",
                           repo_ref_dir=root / "cache/git")
    req = BuildRequest("bench", "release", job_list, root / "out", (1000, 1000),
                       concurrency=jobs)
    t0 = time.monotonic()
    rep = Build(req, get_runtime(runtime, image), caches, ProgressView([])).run()
    wall = time.monotonic() - t0
    assert rep.status == "succeeded", [b.message for b in rep.boards]
    return wall, rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="minimal", help="builder image profile")
    ap.add_argument("--jobs", type=int, default=2, help="concurrent boards for the 8-board run")
    ap.add_argument("--runtime", default="docker")
    args = ap.parse_args()
    image = None
    if args.runtime == "docker":
        image = ensure_image(docker_client(timeout=1800), ImageSpec(profile=args.profile),
                             log=lambda m: print(m, file=sys.stderr)).tag
    with tempfile.TemporaryDirectory(prefix="buildctl-bench-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        print(f"image {image}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        if args.runtime == "docker":  # the floor: one container that does nothing
            from buildctl.builder.runtime.base import RunSpec
            rt = get_runtime("docker", image)
            times = []
            for i in range(5):
                t0 = time.monotonic()
                rt.run(RunSpec(name=f"buildctl-bench-true-{os.getpid()}-{i}", argv=["true"], env={},
                               mounts=[], workdir=Path("/"), owner=(1000, 1000)), lambda _: None)
                times.append(time.monotonic() - t0)
            print(f"container start+stop (true, entry point, user switch): "
                  f"min {min(times):.2f}s median {sorted(times)[2]:.2f}s")
        for boards, jobs in ((1, 1), (8, 1), (8, args.jobs)):
            run(root, boards, image, jobs, args.runtime)  # warm: mirrors, sstate, stamps
            wall, rep = run(root, boards, image, jobs, args.runtime)
            per = [b.seconds for b in rep.boards]
            phases = {p.name: p.seconds for p in rep.boards[0].phases}
            print(f"{boards} board(s), --jobs {jobs}: wall {wall:.2f}s = {wall / boards:.2f}s/board;"
                  f" per board {min(per):.2f}-{max(per):.2f}s (mean {sum(per) / len(per):.2f}s);"
                  f" first board phases {phases}")
            for b in rep.boards if boards == 1 else []:
                print(f"  {b.board}: {b.seconds:.2f}s, tasks run {b.bitbake.get('tasks_run')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
