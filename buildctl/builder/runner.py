"""One board, start to finish: workspace, phases in the runtime, logs, report, deploy outputs.

Phases (each one container run of ``kas shell <board.yml>:<buildctl.yml> -c "bitbake ..."``):
  build mode, hermetic:     fetch (network: ``--runall=fetch``), build (no network)
  build mode, not hermetic: build (network)
  dry-run / parse-only:     dry-run (``bitbake -n``) / parse (``bitbake -p``)
then, after a successful build, collect: deploy outputs are linked into ``<board>/deploy``
through a temporary directory and one rename, so there is never half a deploy directory.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from buildctl.builder.caches import CacheSettings
from buildctl.builder.logparse import BitbakeLog
from buildctl.builder.report import BoardReport, write_json
from buildctl.builder.runtime.base import Mount, Runtime, RunSpec, allowed_host_env
from buildctl.errors import UserError
from buildctl.secrets import SecretRef

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
    device_types: tuple[str, ...] = ()  # what every .mender of the board must carry (gate)
    artifact_name: str | None = None  # the name every .mender must have (gate)
    signing_key: str | None = None  # env:/file: reference; signed here, outside the container
    require_signed: bool = False
    tenant_token: str | None = None  # env:/file: reference; resolved into the container's environment

    @property
    def key(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name


@dataclass
class BuildOptions:
    out_dir: Path
    owner: tuple[int, int]
    mode: str = "build"
    threads: int = 1  # BB_NUMBER_THREADS
    make_jobs: int = 1  # PARALLEL_MAKE -j
    source_date_epoch: int | None = None
    build_id: str = "buildctl"
    series: str = ""
    extra_mounts: list[Path] = field(default_factory=list)  # read-only (local repositories)


class Interrupted(Exception):
    pass


ProgressSink = Callable[[str, str, BitbakeLog | None], None]  # (board, phase, log)


def target_of(kas_file: Path) -> list[str]:
    data = yaml.safe_load(kas_file.read_text()) or {}
    target = data.get("target") or "core-image-minimal"
    return [target] if isinstance(target, str) else list(target)


def local_sources(repos: dict[str, dict], kas_file: Path) -> list[Path]:
    """Host directories a checkout reads from (local repos, file:// URLs): mounted read-only."""
    paths: list[Path] = []
    for spec in repos.values():
        url = str(spec.get("url") or "")
        if url.startswith("file://"):
            paths.append(Path(url[len("file://"):]))
        elif spec.get("path") and not url:
            p = Path(spec["path"])
            paths.append(p if p.is_absolute() else (kas_file.parent / p).resolve())
    return paths


def cache_identity(image_digest: str | None, series: str) -> str:
    """What a build directory's TMPDIR is only valid for: the image and the release series."""
    return hashlib.sha256(f"{image_digest or 'host'}\n{series}".encode()).hexdigest()[:16]


def own(path: Path, owner: tuple[int, int]) -> Path:
    """Give a file buildctl wrote (as root) to the build's owner: outputs are never root's."""
    if os.geteuid() == 0:
        os.lchown(path, *owner)
    return path


def chown_tree(path: Path, owner: tuple[int, int]) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            try:
                os.lchown(n, *owner)
            except FileNotFoundError:
                pass


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
            for phase in self._phases(job):
                if self.stop_requested.is_set():
                    raise Interrupted()
                code = self._run_phase(job, rep, phase)
                if self.stop_requested.is_set():
                    raise Interrupted()
                if code != 0:
                    rep.status = "failed"
                    rep.message = self._failure_message(rep, phase[0], code)
                    break
            else:
                problems = []
                if self.opts.mode == "build":
                    self._collect(job, rep)
                    problems = self._gate(job, rep)
                if problems:
                    rep.status = "failed"
                    rep.message = f"artifact gate: {problems[0].message}"
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
        code = self._run_phase(job, rep, ("checkout", [], True))
        if code != 0:
            rep.message = f"checkout: exit code {code} (log: {rep.phase('checkout').log})"
            self.write_report(job, rep)
        return code == 0

    def _phases(self, job: BoardJob) -> list[tuple[str, list[list[str]], bool]]:
        """(name, bitbake commands, network) per phase."""
        targets = target_of(job.kas_file)
        if self.opts.mode == "dry-run":
            return [("dry-run", [["bitbake", "-n", *targets]], True)]
        if self.opts.mode == "parse-only":
            return [("parse", [["bitbake", "-p"]], True)]
        if self.caches.hermetic:
            fetch = [["bitbake", "--runall=fetch", *targets]]
            if self.caches.mirror_entries(network=True) != self.caches.mirror_entries(False):
                # network mirrors are out of reach later: take what they have now
                fetch.insert(0, ["bitbake", "--setscene-only", *targets])
            return [("fetch", fetch, True), ("build", [["bitbake", *targets]], False)]
        return [("build", [["bitbake", *targets]], True)]

    def _prepare_dirs(self, job: BoardJob, rep: BoardReport) -> None:
        d = self.board_dir(job)
        for sub in ("", "logs", "home", "kas", "work"):
            (d / sub).mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(d / sub, *self.opts.owner)
        kas_copy = d / "kas" / job.kas_file.name
        if job.kas_file.resolve() != kas_copy.resolve():
            shutil.copyfile(job.kas_file, kas_copy)
            own(kas_copy, self.opts.owner)
        ident_file = d / "work" / ".buildctl-identity"
        old = ident_file.read_text().strip() if ident_file.exists() else None
        tmpdir = d / "work" / "build" / "tmp"
        if old and old != rep.cache_identity and tmpdir.exists():
            # TMPDIR made by another image or series is not reusable; sstate still is
            aside = tmpdir.with_name(f"tmp.stale-{old}")
            os.replace(tmpdir, aside)
            shutil.rmtree(aside, ignore_errors=True)
        ident_file.write_text(rep.cache_identity + "\n")
        own(ident_file, self.opts.owner)

    def _overlay(self, job: BoardJob, phase: str, network: bool) -> Path:
        """buildctl's own kas file, combined with the composed one: BitBake settings as env.

        kas forwards ``env`` entries to BitBake through BB_ENV_PASSTHROUGH_ADDITIONS; cache
        paths are forwarded by kas from the process environment (see caches.py).
        """
        env = {"BB_NUMBER_THREADS": str(self.opts.threads),
               "PARALLEL_MAKE": f"-j {self.opts.make_jobs}"}
        if self.opts.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(self.opts.source_date_epoch)
        if not network or self.opts.mode != "build":
            # -p and -n never download: BitBake need not reach the network (nor check that it
            # can, which fails on air-gapped hosts); kas may still fetch the checkout
            env["BB_NO_NETWORK"] = "1"
        data = {"header": {"version": 14}, "env": env}
        path = self.board_dir(job) / "kas" / f"buildctl-{phase}.yml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("# written by buildctl build; settings of this run, not of the product\n"
                       + yaml.safe_dump(data, sort_keys=True))
        os.replace(own(tmp, self.opts.owner), path)
        return path

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

    def _run_phase(self, job: BoardJob, rep: BoardReport, phase_spec) -> int:
        name, commands, network = phase_spec
        d = self.board_dir(job)
        overlay = self._overlay(job, name, network)
        kas_copy = d / "kas" / job.kas_file.name
        if commands:
            argv = ["kas", "shell", f"{kas_copy}:{overlay}", "-c",
                    " && ".join(shlex.join(c) for c in commands)]
        else:
            argv = ["kas", "checkout", f"{kas_copy}:{overlay}"]
        mounts = [Mount(d), *[Mount(p) for p in self.caches.mounts()], *self.shared_mounts,
                  *[Mount(p, read_only=True) for p in
                    dict.fromkeys(local_sources(job.repos, job.kas_file) + self.opts.extra_mounts
                                  + self.caches.mirror_dirs())
                    if p.exists()]]
        env = self._container_env(job, network)
        # the read-only sources belong to another user: tell git (through kas's own
        # GITCONFIG_FILE, since kas runs git with a fresh HOME) that they are safe to read
        sources = [str(m.path) for m in mounts if m.read_only]
        gitconfig = d / "home" / "buildctl.gitconfig"
        gitconfig.write_text("".join(f"[safe]\n\tdirectory = {p}\n\tdirectory = {p}/.git\n"
                                     for p in sources))
        own(gitconfig, self.opts.owner)
        env["GITCONFIG_FILE"] = str(gitconfig)
        spec = RunSpec(name=f"{self.opts.build_id}-{job.key}-{name}"[:120], argv=argv,
                       env=env, mounts=mounts, workdir=d / "work",
                       owner=self.opts.owner, network=network,
                       labels={"org.buildctl.builder": self.opts.build_id,
                               "org.buildctl.board": job.name})
        phase = rep.phase(name)
        phase.status, phase.log = "running", str(d / "logs" / f"{name}.log")
        log = BitbakeLog()
        self.on_progress(job.name, name, log)
        t0 = time.monotonic()
        last = [0.0]
        tmp_log = Path(phase.log + ".partial")
        with open(tmp_log, "w", encoding="utf-8") as fh:
            def on_line(line: str) -> None:
                fh.write(line + "\n")
                log.feed(line)
                now = time.monotonic()
                if now - last[0] > 0.2:
                    last[0] = now
                    fh.flush()
                    self.on_progress(job.name, name, log)

            with self._lock:
                self._active[job.name] = spec.name
            try:
                code = self.runtime.run(spec, on_line)
            finally:
                with self._lock:
                    self._active.pop(job.name, None)
                fh.flush()
                os.replace(tmp_log, phase.log)
                if os.geteuid() == 0:
                    os.chown(phase.log, *self.opts.owner)
        phase.seconds = round(time.monotonic() - t0, 2)
        phase.exit_code = code
        phase.sstate = log.sstate.to_dict() if log.sstate else None
        phase.status = "succeeded" if code == 0 else "failed"
        if self.stop_requested.is_set():
            phase.status = "interrupted"  # whatever the exit code of a stopped container says
        if name != "fetch" or code != 0 or not rep.bitbake:
            rep.bitbake = log.to_dict()
        self.on_progress(job.name, name, log)
        self.write_report(job, rep)
        return code

    def _failure_message(self, rep: BoardReport, phase: str, code: int) -> str:
        fails = rep.bitbake.get("failures") or []
        if fails:
            f = fails[0]
            return f"{phase}: {f['recipe']} {f['task']} failed (log: {f['log'] or '?'})"
        errs = rep.bitbake.get("errors") or []
        return f"{phase}: exit code {code}" + (f": {errs[0]}" if errs else "")

    def _collect(self, job: BoardJob, rep: BoardReport) -> None:
        d = self.board_dir(job)
        src = d / "work" / "build" / "tmp" / "deploy" / "images" / job.machine
        phase = rep.phase("collect")
        t0 = time.monotonic()
        final = d / "deploy"
        staging = d / ".deploy.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        entries = []
        if src.is_dir():
            for p in sorted(src.rglob("*")):
                rel = p.relative_to(src)
                dst = staging / rel
                if p.is_symlink():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.readlink(p), dst)
                    entries.append({"path": str(rel), "link": os.readlink(p)})
                elif p.is_dir():
                    dst.mkdir(parents=True, exist_ok=True)
                elif p.is_file():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(p, dst)
                    except OSError:
                        shutil.copy2(p, dst)
                    entries.append({"path": str(rel), "size": p.stat().st_size})
        chown_tree(staging, self.opts.owner)
        if final.exists():
            old = d / ".deploy.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
        rep.deploy = entries
        rep.deploy_dir = str(final)
        phase.status, phase.seconds = "succeeded", round(time.monotonic() - t0, 2)

    def _gate(self, job: BoardJob, rep: BoardReport) -> list:
        """Sign every .mender the board produced (when the product has a signing key: here, on
        the host, so the private key never enters the container), then check each carries
        exactly the board's device types, the expected artifact name and, when the product
        requires it, a signature that verifies."""
        from buildctl.findings import Finding
        from buildctl.ota.mender import load_private_key, sign_artifact
        from buildctl.ota.mender.gate import check_artifacts

        paths = [Path(rep.deploy_dir) / e["path"] for e in rep.deploy
                 if "size" in e and e["path"].endswith(".mender")]
        if not paths or not job.device_types:
            return []
        public_pem = None
        if job.signing_key:
            try:
                key = load_private_key(job.signing_key, "mender.signing_key")
                for p in paths:
                    sign_artifact(p, key, force=True)
                public_pem = key.public_pem()
            except UserError as exc:
                return [Finding(job.name, "artifact-key", str(exc))]
        findings = check_artifacts(paths, board=job.name, device_types=list(job.device_types),
                                   artifact_name=job.artifact_name,
                                   require_signature=job.require_signed,
                                   public_key_pem=public_pem)
        rep.artifacts = [{"path": str(p.relative_to(rep.deploy_dir)),
                          "problems": [f.message for f in findings if str(f.file) == str(p)]}
                         for p in paths]
        return [f for f in findings if f.severity == "error"]

    def _record_layers(self, job: BoardJob, rep: BoardReport) -> None:
        """The commit each repository is really at after checkout (next to what was asked)."""
        work = self.board_dir(job) / "work"
        for name, info in rep.layers.items():
            repo = work / name
            if not (repo / ".git").exists():
                continue
            out = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(repo), "rev-parse",
                                  "HEAD"], capture_output=True, text=True)
            if out.returncode == 0:
                info["checked_out"] = out.stdout.strip()


def load_report(path: Path) -> dict:
    return json.loads(path.read_text())
