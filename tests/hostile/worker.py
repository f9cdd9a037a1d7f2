"""Runs hostile cases in-process, one at a time, for tests/hostile/test_hostile.py.

Started as ``python -m tests.hostile.worker`` under a memory limit (RLIMIT_AS). Reads one case
id per line on stdin and answers one JSON line: exit code, stdout, stderr, seconds, whether the
case hit its time limit, and what changed on disk in the case's directory (which is also HOME
and TMPDIR for the case, so caches and temporary files count as writes).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.hostile.cases import CASES, Case
from tests.hostile.world import make_world


class CaseTimeout(BaseException):
    """Raised by the interval timer inside the case (a BaseException: nothing swallows it)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")  # fixture repositories: read, never written
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            rel = str(p.relative_to(root))
            out[rel] = (st.st_size if not p.is_dir() else -1, st.st_mtime_ns if not p.is_dir() else 0)
    return out


def run_case(case: Case, world: Path, scratch: Path) -> dict:
    from buildctl.cli import main

    d = scratch / case.id
    shutil.rmtree(d, ignore_errors=True)
    # the fixture repository is read in place (its file:// URL points into the world)
    shutil.copytree(world, d, symlinks=True, ignore=lambda src, names:
                    ["repos"] if Path(src) == world else [])
    (d / "home").mkdir()
    (d / "tmp").mkdir()
    for rel, content in case.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    if case.prepare:
        case.prepare(d)
    before = snapshot(d)
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    os.environ.update({"HOME": str(d / "home"), "TMPDIR": str(d / "tmp"), "COLUMNS": "200",
                       "BUILDCTL_LOG_DIR": str(d / "home" / "logs")})
    for k in ("BUILDCTL_GIT_CACHE", "BUILDCTL_CACHE_DIR", "KAS_REPO_REF_DIR", "XDG_STATE_HOME"):
        os.environ.pop(k, None)
    os.environ.update(case.env)
    tempfile.tempdir = None
    # stdout as the CLI gets it: text with a binary .buffer (artifact cat writes bytes)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)
    err = io.StringIO()
    timed_out = False
    os.chdir(d)
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([a.replace("{d}", str(d)) for a in case.argv])
            except SystemExit as exc:  # argparse: --help, usage errors
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except CaseTimeout:
        rc, timed_out = -1, True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - t0
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile.tempdir = None
    if "crash-" in err.getvalue() or rc == 70:
        timed_out = timed_out or "CaseTimeout" in err.getvalue()
        logs = sorted((d / "home" / "logs").glob("crash-*.log"))
        crash = logs[-1].read_text()[-3000:] if logs else ""
    else:
        crash = ""
    after = snapshot(d)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    stdout = out.buffer.getvalue().decode("utf-8", "replace")
    result = {"id": case.id, "rc": rc, "stdout": stdout, "stderr": err.getvalue(),
              "seconds": seconds, "timed_out": timed_out, "changed": changed, "crash": crash}
    shutil.rmtree(d, ignore_errors=True)
    return result


def _warm_up(world: Path, scratch: Path) -> None:
    """Import what the verbs import and run one valid command, so that case times measure the
    case, not Python's first import of jsonschema and friends."""
    import buildctl.builder.api
    import buildctl.importers.kas  # noqa: F401
    from buildctl.cli import main

    saved = os.getcwd()
    os.chdir(world)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(["compose", "products/demo.yml", "--out", str(scratch / "_warm")])
            main(["artifact", "verify", "signed.mender", "-k", "keys/pub.pem"])
    finally:
        os.chdir(saved)


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="hostile-"))
    world = make_world(scratch / "_world")
    _warm_up(world, scratch)
    by_id = {c.id: c for c in CASES}
    real_stdout = sys.stdout
    real_stdout.write(json.dumps({"ready": True}) + "\n")
    real_stdout.flush()
    try:
        for line in sys.stdin:
            case = by_id[line.strip()]
            real_stdout.write(json.dumps(run_case(case, world, scratch)) + "\n")
            real_stdout.flush()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
