"""A board's phases, each one run of kas + bitbake in the runtime, logged and parsed.

    build mode, hermetic:     fetch (network: ``--runall=fetch``), build (no network)
    build mode, not hermetic: build (network)
    dry-run / parse-only:     dry-run (``bitbake -n``) / parse (``bitbake -p``)
    checkout:                 ``kas checkout`` only (what a shared hash server runs from)

A phase is ``kas shell <board.yml>:<buildctl-phase.yml> -c "bitbake ..."``; its output goes to
``logs/<phase>.log`` (written as ``.partial`` and renamed) and through the BitBake log parser.
"""
from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.builder.caches import CacheSettings
from buildctl.builder.logparse import BitbakeLog
from buildctl.builder.runtime.base import RunSpec, Runtime


@dataclass(frozen=True)
class Phase:
    name: str
    commands: list[list[str]] = field(default_factory=list)  # bitbake command lines; [] = checkout
    network: bool = True


def plan(mode: str, caches: CacheSettings, targets: list[str]) -> list[Phase]:
    if mode == "dry-run":
        return [Phase("dry-run", [["bitbake", "-n", *targets]], True)]
    if mode == "parse-only":
        return [Phase("parse", [["bitbake", "-p"]], True)]
    if caches.hermetic:
        fetch = [["bitbake", "--runall=fetch", *targets]]
        if caches.mirror_entries(network=True) != caches.mirror_entries(False):
            # network mirrors are out of reach later: take what they have now
            fetch.insert(0, ["bitbake", "--setscene-only", *targets])
        return [Phase("fetch", fetch, True), Phase("build", [["bitbake", *targets]], False)]
    return [Phase("build", [["bitbake", *targets]], True)]


CHECKOUT = Phase("checkout", [], True)


def bitbake_settings(*, bb_threads: int, parallel_make: int, network: bool, mode: str,
                     rootfs_timestamp: int | None) -> dict[str, str]:
    """The BitBake variables buildctl sets for one phase (kas ``env`` of the overlay).

    SOURCE_DATE_EPOCH is not among them: OE derives it per recipe from the recipe's sources
    (and keeps it out of task hashes), so one global value would leave cached objects with
    stale timestamps. The product's commit time goes where OE expects one product-level
    value: REPRODUCIBLE_TIMESTAMP_ROOTFS (file times in the root file system and images).
    """
    env = {"BB_NUMBER_THREADS": str(bb_threads), "PARALLEL_MAKE": f"-j {parallel_make}"}
    if rootfs_timestamp is not None:
        env["REPRODUCIBLE_TIMESTAMP_ROOTFS"] = str(rootfs_timestamp)
    if not network or mode != "build":
        # -p and -n never download: BitBake need not reach the network (nor check that it
        # can, which fails on air-gapped hosts); kas may still fetch the checkout
        env["BB_NO_NETWORK"] = "1"
    return env


def kas_argv(kas_file: Path, overlay: Path, phase: Phase) -> list[str]:
    if not phase.commands:
        return ["kas", "checkout", f"{kas_file}:{overlay}"]
    return ["kas", "shell", f"{kas_file}:{overlay}", "-c",
            " && ".join(shlex.join(c) for c in phase.commands)]


def shell_argv(kas_file: Path, overlay: Path, command: str | None) -> list[str]:
    """``kas shell``: check out when needed, write the configuration, source
    oe-init-build-env in the build directory, then $SHELL (or ``$SHELL -c command``)."""
    if command is None:
        return ["kas", "shell", f"{kas_file}:{overlay}"]
    return ["kas", "--log-level", "warning", "shell", f"{kas_file}:{overlay}", "-c", command]


def run_logged(runtime: Runtime, spec: RunSpec, log_path: Path, owner: tuple[int, int],
               on_log: Callable[[BitbakeLog], None]) -> tuple[int, BitbakeLog]:
    """Run spec, writing every output line to log_path (``.partial`` until the end) and to the
    parser; on_log sees the parsed log a few times a second."""
    log = BitbakeLog()
    last = [0.0]
    tmp_log = Path(str(log_path) + ".partial")
    with open(tmp_log, "w", encoding="utf-8") as fh:
        def on_line(line: str) -> None:
            fh.write(line + "\n")
            log.feed(line)
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                fh.flush()
                on_log(log)

        try:
            code = runtime.run(spec, on_line)
        finally:
            fh.flush()
            os.replace(tmp_log, log_path)
            if os.geteuid() == 0:
                os.chown(log_path, *owner)
    return code, log


def failure_message(phase: str, code: int, bitbake: dict) -> str:
    """One line: which task failed and the failing tool's first error (the root cause)."""
    cause = bitbake.get("root_cause") or ""
    fails = bitbake.get("failures") or []
    if fails:
        f = fails[0]
        return (f"{phase}: {f['recipe']} {f['task']} failed" + (f": {cause}" if cause else "")
                + f" (log: {f['log'] or '?'})")
    return f"{phase}: " + (cause or f"exit code {code}")
