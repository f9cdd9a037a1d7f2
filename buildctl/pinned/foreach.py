"""Run one command in every pinned repository (``buildctl repos``): a scratch checkout at the
pin, the repository described in the environment, the output prefixed with its id."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from buildctl.errors import UserError
from buildctl.layers.gitfs import GitError
from buildctl.pinned.checkout import materialize
from buildctl.pinned.pins import Pinned

ENV_PREFIX = "BUILDCTL_REPO_"


@dataclass
class RunResult:
    key: str
    commit: str
    path: str
    exit_code: int | None  # None: not run (an earlier one failed, without --keep-going)
    error: str = ""  # why it could not run (checkout failed, command not found)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict:
        return {"repo": self.key, "commit": self.commit, "path": self.path,
                "exit_code": self.exit_code, "error": self.error}


def repo_env(p: Pinned, path: Path) -> dict[str, str]:
    return {f"{ENV_PREFIX}ID": p.id, f"{ENV_PREFIX}COMMIT": p.commit,
            f"{ENV_PREFIX}PATH": str(path), f"{ENV_PREFIX}URL": p.url,
            f"{ENV_PREFIX}BRANCH": p.branch or "", f"{ENV_PREFIX}BOARDS": " ".join(p.boards)}


def _pump(stream, out, prefix: str, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with lock:
            out.write(f"{prefix}{line}\n")
            out.flush()


def run_one(argv: list[str], cwd: Path, env: dict[str, str], prefix: str,
            stdout=None, stderr=None) -> int:
    """Run argv, its stdout and stderr lines prefixed onto ours; its exit code."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = threading.Lock()
    threads = [threading.Thread(target=_pump, args=(s, o, prefix, lock), daemon=True)
               for s, o in ((proc.stdout, stdout), (proc.stderr, stderr))]
    for t in threads:
        t.start()
    code = proc.wait()
    for t in threads:
        t.join()
    return code


def foreach(pins: list[Pinned], git_dir: Callable[[Pinned], Path], argv: list[str],
            scratch: Path, *, keep_going: bool = False, stdout=None,
            stderr=None) -> list[RunResult]:
    results: list[RunResult] = []
    width = max((len(p.key) for p in pins), default=0)
    stop = False
    for p in pins:
        dest = scratch / p.key
        res = RunResult(p.key, p.commit, str(dest), None)
        results.append(res)
        if stop:
            continue
        prefix = f"[{p.key}]".ljust(width + 3)
        try:
            materialize(git_dir(p), p.commit, dest)
        except (UserError, GitError) as exc:  # named in the summary; the others still run
            res.error = f"checkout failed: {exc}"
        else:
            env = dict(os.environ, **repo_env(p, dest))
            try:
                res.exit_code = run_one(argv, dest, env, prefix, stdout, stderr)
            except FileNotFoundError:
                res.exit_code, res.error = 127, f"{argv[0]}: command not found"
            except PermissionError:
                res.exit_code, res.error = 126, f"{argv[0]}: permission denied"
        if not res.ok and not keep_going:
            stop = True
    return results
