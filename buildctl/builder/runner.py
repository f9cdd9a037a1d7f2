"""One board, start to finish: workspace, phases in the runtime, deploy collection, release.

The pieces live in their own modules: ``workspace`` (the board's directory and the kas files
of each phase), ``phases`` (which phases run, one container run each, logs), ``deploy``
(collecting DEPLOY_DIR_IMAGE) and, after a successful build, ``buildctl.release`` (signing
and the artifact gate). This module runs them in order and keeps the board's report.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from buildctl.builder import deploy, phases, workspace
from buildctl.builder.caches import CacheSettings
from buildctl.builder.logparse import BitbakeLog, task_log_cause
from buildctl.builder.report import BoardReport, write_json
from buildctl.builder.runtime.base import Mount, Runtime, RunSpec, allowed_host_env
from buildctl.secrets import SecretRef
from buildctl.builder.workspace import cache_identity, local_sources
from buildctl.layers.gitauth import GitAuth
from buildctl.release.gate import BoardRelease, gate_board

MODES = ("build", "dry-run", "parse-only")


@dataclass
class BoardJob:
    """What to build for one board: the composed kas file and what it pins."""

    name: str
    machine: str
    variant: str
    kas_file: Path
    repos: dict[str, dict] = field(default_factory=dict)  # name -> {url|path, commit}
    tune: str = ""
    family: str = ""
    device_types: tuple[str, ...] | None = None  # what every .mender must carry (gate; None: unknown)
    artifact_name: str | None = None  # the name every .mender must have (gate)
    signing_key: str | None = None  # env:/file: reference; signed here, outside the container
    require_signed: bool = False
    tenant_token: str | None = None  # env:/file: reference; resolved into the container's environment
    image_types: tuple[str, ...] = ()  # deploy outputs the manifest promises (gate): mender, sdimg
    # private repositories: credentials for the checkout phase (never the bitbake phases)
    fetch_auth: GitAuth | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name


@dataclass
class BuildOptions:
    out_dir: Path
    owner: tuple[int, int]
    mode: str = "build"
    bb_threads: int = 1  # BB_NUMBER_THREADS of each board
    parallel_make: int = 1  # PARALLEL_MAKE -j of each board
    source_date_epoch: int | None = None  # the product's commit time: REPRODUCIBLE_TIMESTAMP_ROOTFS
    build_id: str = "buildctl"
    series: str = ""
    extra_mounts: list[Path] = field(default_factory=list)  # read-only (local repositories)


class Interrupted(Exception):
    pass


ProgressSink = Callable[[str, str, BitbakeLog | None], None]  # (board, phase, log)


def release_of(job: BoardJob) -> BoardRelease:
    return BoardRelease(board=job.name, device_types=job.device_types,
                        artifact_name=job.artifact_name, signing_key=job.signing_key,
                        require_signed=job.require_signed, machine=job.machine,
                        images=tuple(target_of(job.kas_file)), image_types=job.image_types)


def target_of(kas_file: Path) -> list[str]:
    data = yaml.safe_load(kas_file.read_text()) or {}
    target = data.get("target") or "core-image-minimal"
    return [target] if isinstance(target, str) else list(target)


class BoardRunner:
    def __init__(self, runtime: Runtime, caches: CacheSettings, opts: BuildOptions,
                 runtime_facts: dict, on_progress: ProgressSink | None = None) -> None:
        self.runtime = runtime
        self.caches = caches
        self.opts = opts
        self.facts = runtime_facts
        self.on_progress = on_progress or (lambda *a: None)
        self.stop_requested = threading.Event()
        self.hashserve_address: str | None = None  # the build's shared server, when running
        self.shared_mounts: list[Mount] = []
        self._active: dict[str, str] = {}  # board -> running container name
        self._lock = threading.Lock()

    # -- interruption ------------------------------------------------------------------------
    def stop_all(self) -> None:
        self.stop_requested.set()
        with self._lock:
            names = list(self._active.values())
        for name in names:
            self.runtime.stop(name)

    def stop_board(self, board: str) -> None:
        with self._lock:
            name = self._active.get(board)
        if name:
            self.runtime.stop(name)

    # -- one board ---------------------------------------------------------------------------
    def board_dir(self, job: BoardJob) -> Path:
        return self.opts.out_dir / job.key

    def new_report(self, job: BoardJob) -> BoardReport:
        d = self.board_dir(job)
        return BoardReport(
            board=job.name, machine=job.machine, variant=job.variant, mode=self.opts.mode,
            runtime=self.facts.get("runtime", ""), image=self.facts.get("image"),
            image_digest=self.facts.get("image_digest"),
            cache_identity=cache_identity(self.facts.get("image_digest"), self.opts.series),
            source_date_epoch=self.opts.source_date_epoch,
            layers={k: dict(v) for k, v in job.repos.items()}, log_dir=str(d / "logs"))

    def write_report(self, job: BoardJob, rep: BoardReport) -> None:
        write_json(self.board_dir(job) / "report.json", rep.to_dict(), self.opts.owner)

    def run(self, job: BoardJob, rep: BoardReport | None = None) -> BoardReport:
        rep = rep or self.new_report(job)
        t0 = time.monotonic()
        rep.started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rep.status = "running"
        try:
            self._prepare_dirs(job, rep)
            self.write_report(job, rep)
            plan = phases.plan(self.opts.mode, self.caches, target_of(job.kas_file))
            if job.fetch_auth is not None and not any(
                    p.name == "checkout" and p.status == "succeeded" for p in rep.phases):
                # private repositories: checked out first, with the credentials, so that
                # the bitbake phases find every pinned commit and never need them
                plan = [phases.CHECKOUT, *plan]
            for phase in plan:
                if self.stop_requested.is_set():
                    raise Interrupted()
                code = self._run_phase(job, rep, phase)
                if self.stop_requested.is_set():
                    raise Interrupted()
                if code != 0:
                    rep.status = "failed"
                    rep.message = phases.failure_message(phase.name, code, rep.bitbake)
                    if phase is phases.CHECKOUT:
                        rep.message = self._checkout_cause(job, rep) or rep.message
                    break
            else:
                problems = []
                if self.opts.mode == "build":
                    self._collect(job, rep)
                    problems = self._release(job, rep)
                if problems:
                    rep.status = "failed"
                    rep.message = f"artifact gate: {problems[0].message}"
                    rep.root_cause = "; ".join(f.message for f in problems)
                else:
                    rep.status = "succeeded"
        except Interrupted:
            rep.status = "interrupted"
            rep.message = "stopped by a signal or --fail-fast; run again to continue from the caches"
            for p in rep.phases:
                if p.status == "running":
                    p.status = "interrupted"
        except Exception as exc:  # keep the other boards going; the report says why
            rep.status = "failed"
            rep.message = f"{exc.__class__.__name__}: {exc}"
        finally:
            rep.seconds = round(time.monotonic() - t0, 2)
            self._record_layers(job, rep)
            self.write_report(job, rep)
            self.on_progress(job.name, rep.status, None)
        return rep

    def checkout(self, job: BoardJob, rep: BoardReport) -> bool:
        """Only check the repositories out (network): what the shared hash server runs from."""
        self._prepare_dirs(job, rep)
        code = self._run_phase(job, rep, phases.CHECKOUT)
        if code != 0:
            rep.message = (self._checkout_cause(job, rep)
                           or phases.failure_message("checkout", code, rep.bitbake))
            self.write_report(job, rep)
        return code == 0

    def _checkout_cause(self, job: BoardJob, rep: BoardReport) -> str | None:
        """A checkout that failed on a repository: which one, and git's (or ssh's) reason."""
        from buildctl.layers.gitauth import explain_failure

        try:
            text = Path(rep.phase("checkout").log).read_text(errors="replace")
        except (OSError, TypeError):
            return None
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "ERROR" not in line or "failed" not in line:
                continue
            for name, info in job.repos.items():
                url = info.get("url")
                if url and url in line:
                    after = "\n".join(lines[i + 1:i + 8])
                    why = explain_failure(after, job.fetch_auth, url)
                    return f"checkout: repo {name} ({url}): {why or 'git failed'}"
        return None

    def _prepare_dirs(self, job: BoardJob, rep: BoardReport) -> None:
        self.prepare_board(job, rep.cache_identity)

    def prepare_board(self, job: BoardJob, identity: str) -> None:
        workspace.prepare(self.board_dir(job), job.kas_file, identity, self.opts.owner)

    def _overlay(self, job: BoardJob, phase: str, network: bool) -> Path:
        return self.overlay(job, phase, network, self.opts.mode)

    def overlay(self, job: BoardJob, phase: str, network: bool, mode: str) -> Path:
        """buildctl's kas overlay of one phase (BitBake settings of the run), written."""
        env = phases.bitbake_settings(bb_threads=self.opts.bb_threads,
                                      parallel_make=self.opts.parallel_make, network=network,
                                      mode=mode, rootfs_timestamp=self.opts.source_date_epoch)
        return workspace.write_overlay(self.board_dir(job), phase, env, self.opts.owner)

    def _container_env(self, job: BoardJob, network: bool) -> dict[str, str]:
        d = self.board_dir(job)
        env = allowed_host_env()
        env.update(self.caches.bitbake_env(network, self.hashserve_address))
        env.update({
            "HOME": str(d / "home"),
            "KAS_WORK_DIR": str(d / "work"),
            "KAS_BUILD_DIR": str(d / "work" / "build"),
            "KAS_REPO_REF_DIR": str(self.caches.repo_ref_dir),
            "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8",
        })
        if self.runtime.name == "host":
            env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
            env["LANG"] = env["LC_ALL"] = os.environ.get("LANG", "C.UTF-8")
        if job.tenant_token:  # the kas file names the variable (env: without a value), never the value
            env["MENDER_TENANT_TOKEN"] = SecretRef.parse(job.tenant_token).resolve_bytes().decode().strip()
        return env

    def _sources(self, job: BoardJob) -> list[Path]:
        """What every command of the board sees read-only: local layer sources, mirrors."""
        return [p for p in dict.fromkeys(local_sources(job.repos, job.kas_file)
                                         + self.opts.extra_mounts + self.caches.mirror_dirs())
                if p.exists()]

    def run_spec(self, job: BoardJob, label: str, argv: list[str], network: bool,
                 material=None) -> RunSpec:
        """How one command runs for a board, the way every phase runs: the board's directory,
        the caches and local sources mounted, the build's environment, its user.
        ``buildctl shell`` and ``getvar`` enter a board through this too. ``material``: the
        fetch credentials (agent socket, known_hosts, netrc, helper) of a checkout phase, the
        one command that sees them."""
        d = self.board_dir(job)
        mounts = [Mount(d), *[Mount(p) for p in self.caches.mounts()], *self.shared_mounts,
                  *[Mount(p, read_only=True) for p in self._sources(job)]]
        env = self._container_env(job, network)
        env["GITCONFIG_FILE"] = str(workspace.write_gitconfig(
            d, [str(m.path) for m in mounts if m.read_only], self.opts.owner))
        if material is not None:
            env.update(material.env)
            mounts += [Mount(p, read_only=True) for p in material.mounts]
            if material.socket is not None:
                mounts.append(Mount(material.socket))
        return RunSpec(name=f"{self.opts.build_id}-{job.key}-{label}"[:120], argv=argv,
                       env=env, mounts=mounts, workdir=d / "work", owner=self.opts.owner,
                       network=network, labels={"org.buildctl.builder": self.opts.build_id,
                                                "org.buildctl.board": job.name})

    def fetch_material(self, job: BoardJob):
        """The caller's fetch credentials for a checkout of a board with private repositories
        (None without any): what ``run_spec`` gives the one command that may see them; the
        caller discards it (``GitAuth.discard``) when that command ended."""
        if job.fetch_auth is None:
            return None
        return job.fetch_auth.checkout_material([str(p) for p in self._sources(job)],
                                                self.opts.owner)

    def kas_file_of(self, job: BoardJob) -> Path:
        """The board's copy of its composed kas file (what every phase runs kas on)."""
        return workspace.kas_copy(self.board_dir(job), job.kas_file)

    def _run_phase(self, job: BoardJob, rep: BoardReport, phase: phases.Phase) -> int:
        d = self.board_dir(job)
        overlay = self._overlay(job, phase.name, phase.network)
        material = self.fetch_material(job) if phase is phases.CHECKOUT else None
        spec = self.run_spec(job, phase.name,
                             phases.kas_argv(self.kas_file_of(job), overlay, phase),
                             phase.network, material)
        result = rep.phase(phase.name)
        result.status, result.log = "running", str(d / "logs" / f"{phase.name}.log")
        self.on_progress(job.name, phase.name, BitbakeLog())
        t0 = time.monotonic()
        with self._lock:
            self._active[job.name] = spec.name
        try:
            code, log = phases.run_logged(self.runtime, spec, Path(result.log), self.opts.owner,
                                          lambda lg: self.on_progress(job.name, phase.name, lg))
        finally:
            with self._lock:
                self._active.pop(job.name, None)
            if material is not None:
                GitAuth.discard(material)
        result.seconds = round(time.monotonic() - t0, 2)
        result.exit_code = code
        result.sstate = log.sstate.to_dict() if log.sstate else None
        result.status = "succeeded" if code == 0 else "failed"
        if self.stop_requested.is_set():
            result.status = "interrupted"  # whatever the exit code of a stopped container says
        if phase.name != "fetch" or code != 0 or not rep.bitbake:
            rep.bitbake = log.to_dict()
            if code != 0 and log.failures and log.failures[0].log:
                # the task's own tool said why; BitBake's console only points at its log
                cause = task_log_cause(log.failures[0].log)
                if cause:
                    rep.bitbake["root_cause"] = cause
        if code != 0:
            rep.root_cause = rep.bitbake.get("root_cause") or ""
        self.on_progress(job.name, phase.name, log)
        self.write_report(job, rep)
        return code

    def _collect(self, job: BoardJob, rep: BoardReport) -> None:
        d = self.board_dir(job)
        result = rep.phase("collect")
        t0 = time.monotonic()
        rep.deploy = deploy.collect(deploy.deploy_source(d, job.machine), d / "deploy",
                                    self.opts.owner)
        rep.deploy_dir = str(d / "deploy")
        result.status, result.seconds = "succeeded", round(time.monotonic() - t0, 2)

    def _release(self, job: BoardJob, rep: BoardReport) -> list:
        """The release steps of a built board (sign, gate): errors that fail the board."""
        result = gate_board(release_of(job), Path(rep.deploy_dir), rep.deploy)
        if result.artifacts:
            rep.artifacts = result.artifacts
        return result.errors

    def _record_layers(self, job: BoardJob, rep: BoardReport) -> None:
        """The commit each repository is really at after checkout (next to what was asked)."""
        work = self.board_dir(job) / "work"
        for name, info in rep.layers.items():
            if info.get("path") and not info.get("url"):  # used in place, as it is on disk
                if not info.get("layers"):
                    continue  # not a layer repository (compose's directory of the devices' key)
                p = Path(info["path"])
                dirty = workspace.local_tree_dirty(
                    p if p.is_absolute() else (job.kas_file.parent / p).resolve())
                if dirty is not None:
                    info["dirty"] = dirty
                continue
            repo = work / name
            if not (repo / ".git").exists():
                continue
            out = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(repo), "rev-parse",
                                  "HEAD"], capture_output=True, text=True)
            if out.returncode == 0:
                info["checked_out"] = out.stdout.strip()


def load_report(path: Path) -> dict:
    return json.loads(path.read_text())
