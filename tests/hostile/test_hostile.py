"""The hostile-input suite: every case in tests/hostile/cases.py, run in one worker process
under a memory limit with a per-case time limit, must end in one line with its exit code,
without a traceback and without writing anything."""
from __future__ import annotations

import json
import os
import re
import resource
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile.cases import CASES, Case

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 2 << 30  # address space of the worker: a bomb that expands fails, not the host
HARD_TIMEOUT = 20.0  # the worker itself is killed when a case hangs in C code


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Worker:
    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.hostile.worker"], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, preexec_fn=_limit_memory)
        assert self._read(60.0).get("ready"), "hostile worker did not start"

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died (exit {self.proc.wait()}): memory limit?")
        return json.loads(line)

    def run(self, case: Case) -> dict:
        self.proc.stdin.write(case.id + "\n")
        self.proc.stdin.flush()
        return self._read(HARD_TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def worker():
    holder = {"w": Worker()}

    def run(case: Case) -> dict:
        try:
            return holder["w"].run(case)
        except (TimeoutError, RuntimeError) as exc:
            holder["w"].close()
            holder["w"] = Worker()  # the next case gets a fresh one
            pytest.fail(f"{case.id}: {exc.__class__.__name__}: {exc}")

    yield run
    holder["w"].close()


def test_suite_is_big_enough_and_covers_every_verb():
    assert len(CASES) >= 100
    verbs = {c.argv[0] for c in CASES if c.argv}
    assert verbs >= {"validate", "compose", "lock", "build", "import-kas", "artifact", "doctor",
                     "container", "shell", "getvar", "repos", "clean", "diff", "cache", "release"}
    actions = {tuple(c.argv[:2]) for c in CASES if len(c.argv) > 1}
    assert actions >= {("artifact", a) for a in ("dump", "cat", "cp", "write", "sign")}
    assert actions >= {("release", "delta"), ("release", "apps"), ("cache", "prune")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: Case, worker):
    r = worker(case)
    assert not r["timed_out"], f"no answer within {case.timeout} s"
    assert r["rc"] != 70, f"internal error:\n{r['stderr']}\n{r['crash']}"
    both = r["stdout"] + r["stderr"]
    assert "Traceback" not in both, both
    text = r[case.stream].strip()
    lines = [x for x in r["stderr"].splitlines() if x.strip()]
    assert len(lines) <= 1, f"more than one line on stderr:\n{r['stderr']}"
    if case.stream == "stderr":
        assert len(lines) == 1, f"no error line (rc {r['rc']}); stdout:\n{r['stdout']}"
        assert text.startswith("buildctl"), text
    assert re.search(case.msg, text), f"{text!r} does not match {case.msg!r}"
    assert r["rc"] == case.rc, f"exit {r['rc']} (expected {case.rc}): {text}"
    assert r["changed"] == [], f"written or removed: {r['changed']}"
