"""Several boards, one build: ordering, a concurrency limit, --fail-fast, signals, the report.

Boards run in worker threads (each mostly waits on its container). A board that shares its
CPU tune with an earlier one waits until that first board finished, so it starts from warm
sstate. SIGINT/SIGTERM stop every container this build started, and every board report and
the build report say ``interrupted``; nothing else is left half written.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from buildctl.builder import inuse
from buildctl.builder.caches import CacheSettings, preflight_all
from buildctl.builder.hashserve import SharedHashServer, find_hashserv
from buildctl.errors import UserError
from buildctl.builder.plan import order_boards, split_threads
from buildctl.builder.progress import ProgressView
from buildctl.builder.report import BoardReport, BuildReport, write_json
from buildctl.builder.runner import BoardJob, BoardRunner, BuildOptions
from buildctl.builder.workspace import chown_tree, own
from buildctl.builder.runtime.base import Runtime


@dataclass
class BuildRequest:
    product: str
    variant: str
    jobs: list[BoardJob]
    out_dir: Path
    owner: tuple[int, int]
    mode: str = "build"
    concurrency: int = 1  # --jobs: how many of the jobs (one per board) run at the same time
    cpus: int | None = None
    fail_fast: bool = False
    source_date_epoch: int | None = None
    series: str = ""


def new_build_id() -> str:
    return "buildctl-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S") + "-" + \
        uuid.uuid4().hex[:6]


class Build:
    def __init__(self, req: BuildRequest, runtime: Runtime, caches: CacheSettings,
                 view: ProgressView | None = None) -> None:
        self.req = req
        self.runtime = runtime
        self.caches = caches
        self.view = view
        self.interrupted = threading.Event()
        self.report_path = req.out_dir / "build-report.json"
        self._write_lock = threading.Lock()

    def interrupt(self, *_args) -> None:
        self.interrupted.set()

    def run(self) -> BuildReport:
        req = self.req
        if not req.out_dir.exists():
            req.out_dir.mkdir(parents=True)
            own(req.out_dir, req.owner)
        compose_dir = req.out_dir / ".compose"  # written by compose (as whoever runs buildctl)
        if compose_dir.exists():
            chown_tree(compose_dir, req.owner)
        preflight_all(self.caches, req.owner)
        build_id = new_build_id()
        # clean and cache prune leave alone what this build uses, for as long as it runs
        holder = inuse.Holder(build_id=build_id, pid=os.getpid(), product=req.product,
                              boards=[j.key for j in req.jobs], started=inuse.now())
        used = [req.out_dir / j.key for j in req.jobs] + [self.caches.sstate_dir,
                                                           self.caches.dl_dir]
        with inuse.hold(used, holder, req.owner):
            if req.mode == "build":
                for cache_dir in (self.caches.sstate_dir, self.caches.dl_dir):
                    inuse.record(cache_dir, {"build_id": build_id, "started": holder.started,
                                             "product": req.product, "boards": holder.boards,
                                             "out_dir": str(req.out_dir)}, req.owner)
            return self._run(build_id)

    def _run(self, build_id: str) -> BuildReport:
        req = self.req
        t0 = time.monotonic()
        facts = self.runtime.prepare()
        plans = order_boards([(j.name, j.machine, j.tune, j.family) for j in req.jobs])
        by_name = {j.name: j for j in req.jobs}
        concurrency = max(1, min(req.concurrency, len(plans)))
        threads, make = split_threads(req.cpus, concurrency)
        opts = BuildOptions(out_dir=req.out_dir, owner=req.owner, mode=req.mode,
                            bb_threads=threads, parallel_make=make,
                            source_date_epoch=req.source_date_epoch,
                            build_id=build_id, series=req.series)
        runner = BoardRunner(self.runtime, self.caches, opts, facts,
                             self.view.update if self.view else None)
        report = BuildReport(
            product=req.product, variant=req.variant, mode=req.mode,
            started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            runtime=facts.get("runtime", ""), image=facts.get("image"),
            image_digest=facts.get("image_digest"), jobs=concurrency, out_dir=str(req.out_dir),
            threads_per_board=threads, caches=self.caches.to_dict(),
            order=[p.name for p in plans])
        reports: dict[str, BoardReport] = {p.name: runner.new_report(by_name[p.name])
                                           for p in plans}
        report.boards = [reports[p.name] for p in plans]
        self._write(report, t0)

        server = None
        if self.caches.hashserve == "auto" and req.mode != "parse-only" and \
                not self.interrupted.is_set():
            server = self._start_hashserver(runner, by_name[plans[0].name],
                                            reports[plans[0].name], build_id, report)
            self._write(report, t0)

        pending = list(plans)
        running: dict[str, threading.Thread] = {}
        leaders_done: dict[str, bool] = {}
        leader_of = {p.tune: p.name for p in plans if p.warm_up}
        stop = False
        failed = False
        lock = threading.Lock()
        done_event = threading.Event()

        def work(plan) -> None:
            runner.run(by_name[plan.name], reports[plan.name])  # fills the report in place
            with lock:
                if plan.warm_up:
                    leaders_done[plan.tune] = True
            self._write(report, t0)
            done_event.set()

        try:
            while pending or running:
                if self.interrupted.is_set() and not stop:
                    stop = True
                    runner.stop_all()
                if not stop and req.fail_fast and any(
                        r.status == "failed" for r in reports.values()):
                    stop = failed = True
                    runner.stop_all()
                for name, th in list(running.items()):
                    if not th.is_alive():
                        th.join()
                        del running[name]
                if stop:
                    for plan in pending:
                        reports[plan.name].status = "skipped"
                        reports[plan.name].message = ("interrupted before it started"
                                                      if not failed else
                                                      "not started: --fail-fast after a failure")
                        if self.view:
                            self.view.update(plan.name, "skipped", None)
                    pending = []
                while pending and len(running) < concurrency:
                    plan = next((p for p in pending if p.warm_up or
                                 leaders_done.get(p.tune) or
                                 reports[leader_of[p.tune]].status in
                                 ("failed", "skipped", "interrupted")), None)
                    if plan is None:
                        break
                    pending.remove(plan)
                    th = threading.Thread(target=work, args=(plan,), name=plan.name, daemon=True)
                    running[plan.name] = th
                    th.start()
                done_event.wait(0.2)
                done_event.clear()
        finally:
            if running:  # an exception in this loop: do not leave containers behind
                runner.stop_all()
                for th in running.values():
                    th.join(timeout=30)
            if server is not None:
                server.stop()
            self.runtime.cleanup()
        if self.interrupted.is_set():
            report.status = "interrupted"
        elif all(r.status == "succeeded" for r in reports.values()):
            report.status = "succeeded"
        else:
            report.status = "failed"
        self._write(report, t0)
        return report

    def _start_hashserver(self, runner: BoardRunner, first: BoardJob, rep: BoardReport,
                          build_id: str, report: BuildReport):
        """Check the first board out and run BitBake's hash server from it for all boards."""
        db_note = {"mode": "auto", "database": "per build directory (BitBake's own)"}
        if not runner.checkout(first, rep):
            report.hashserve = {**db_note, "note": "first checkout failed"}
            return None
        hashserv = find_hashserv(runner.board_dir(first) / "work")
        if hashserv is None:
            report.hashserve = {**db_note, "note": "no bin/bitbake-hashserv in the checkout"}
            return None
        server = SharedHashServer(self.runtime, self.caches.sstate_dir, self.req.series,
                                  self.req.owner, build_id, self.caches.hashserve_upstream)
        try:
            server.start(hashserv, runner.board_dir(first) / "work")
        except UserError as exc:
            report.hashserve = {**db_note, "note": str(exc)}
            return None
        runner.hashserve_address = server.address
        runner.shared_mounts = server.mounts()
        report.hashserve = {"mode": "shared", "address": server.address,
                            "database": str(server.db), "server": str(hashserv),
                            "upstream": self.caches.hashserve_upstream}
        return server

    def _write(self, report: BuildReport, t0: float) -> None:
        with self._write_lock:
            report.seconds = round(time.monotonic() - t0, 2)
            write_json(self.report_path, report.to_dict(), self.req.owner)


class SignalsToInterrupt:
    """While active, SIGINT and SIGTERM ask the build to stop instead of killing buildctl."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self.build.interrupt)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
