"""Enter a board's build environment without building: ``buildctl shell`` and ``getvar``.

A product is opened exactly as ``build`` opens it (``api.open_target``: compose into
``<out>/.compose``, caches, runtime) and a board is entered through the same
``BoardRunner.run_spec`` as every build phase: same image, mounts, caches, user and
environment, same board directory (``<out>/<board>-<variant>``: the build's checkouts, build
directory and parse cache). Inside, ``kas shell`` does what it does for a kas user: checks the
repositories out when they are not yet, writes the build configuration and sources
oe-init-build-env in the board's build directory. Nothing is built.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import uuid
from dataclasses import dataclass, field

from buildctl.builder import getvar_probe, phases
from buildctl.builder.api import BuildArgs, Opened, open_target
from buildctl.builder.caches import preflight_all
from buildctl.builder.epoch import source_date_epoch
from buildctl.builder.plan import split_threads
from buildctl.builder.runner import BoardJob, BoardRunner, BuildOptions
from buildctl.builder.runtime.base import RunSpec
from buildctl.builder.workspace import cache_identity, chown_tree, own
from buildctl.errors import UserError
from buildctl.fsutil import write_atomic
from buildctl.manifest.bitbake_vars import secret_variables

REDACTED = "<redacted>"
_VAR = "[A-Za-z0-9_][A-Za-z0-9_\\-]*"
_RECIPE = "(virtual/)?[A-Za-z0-9][A-Za-z0-9._+-]{0,199}"  # a PN, or a virtual/ provider


@dataclass
class BoardValues:
    """What one board's BitBake says about the variables asked for."""

    board: str
    tool: str = ""  # bitbake-getvar | bitbake -e
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # variable -> BitBake's words
    error: str = ""  # the board could not be asked at all (checkout, parse)
    redacted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"board": self.board, "tool": self.tool, "values": self.values,
                "errors": self.errors, "error": self.error, "redacted": self.redacted}


class Session:
    """The selected boards of a product, ready to be entered."""

    def __init__(self, args: BuildArgs) -> None:
        self.opened: Opened = open_target(args)
        o = self.opened
        compose_dir = o.out / ".compose"  # written by compose as whoever runs buildctl
        if compose_dir.exists():
            chown_tree(compose_dir, o.owner)
        if o.runtime.name == "host" and not shutil.which("kas"):
            raise UserError("host: kas is not on PATH (pip install kas), or choose "
                            "--runtime docker|podman")
        preflight_all(o.caches, o.owner)
        facts = o.runtime.prepare()
        threads, make = split_threads(None, 1)
        opts = BuildOptions(out_dir=o.out, owner=o.owner, mode="build", bb_threads=threads,
                            parallel_make=make,
                            source_date_epoch=source_date_epoch(o.target.root),
                            build_id=f"buildctl-{uuid.uuid4().hex[:6]}",
                            series=o.target.series)
        self.runner = BoardRunner(o.runtime, o.caches, opts, facts)
        self.identity = cache_identity(facts.get("image_digest"), o.target.series)

    @property
    def jobs(self) -> list[BoardJob]:
        return self.opened.target.jobs

    def _check_out_private(self, job: BoardJob) -> None:
        """A board with private repositories: kas checks them out first, in a command of its
        own that alone gets the caller's credentials (as the build's checkout phase), so the
        shell, devtool or BitBake started after it never see the agent, netrc or helper."""
        from buildctl.layers.gitauth import GitAuth, explain_failure

        material = self.runner.fetch_material(job)
        if material is None:
            return
        lines: list[str] = []
        try:
            overlay = self.runner.overlay(job, "checkout", network=True, mode="build")
            spec = self.runner.run_spec(
                job, "checkout", phases.kas_argv(self.runner.kas_file_of(job), overlay,
                                                 phases.CHECKOUT), True, material)
            code = self.opened.runtime.run(spec, lines.append)
        finally:
            GitAuth.discard(material)
            self.opened.runtime.cleanup()
        if code != 0:
            url = next((r["url"] for r in job.repos.values()
                        if r.get("url") and any(r["url"] in ln for ln in lines)), None)
            name = next((n for n, r in job.repos.items() if url and r.get("url") == url), None)
            why = explain_failure("\n".join(lines), job.fetch_auth, url) or why_failed(lines, code, {})
            what = f"repo {name} ({url})" if name else "the board's repositories"
            raise UserError(f"{job.name}: checkout: {what}: {why}")

    def _spec(self, job: BoardJob, label: str, mode: str, command: str | None) -> RunSpec:
        self.runner.prepare_board(job, self.identity)
        self._check_out_private(job)
        overlay = self.runner.overlay(job, label, network=True, mode=mode)
        argv = phases.shell_argv(self.runner.kas_file_of(job), overlay, command)
        # network: kas may have to check the repositories out first (as the checkout phase)
        return self.runner.run_spec(job, label, argv, network=True)

    def shell(self, job: BoardJob, command: str | None, tty: bool) -> int:
        """The board's build environment on the caller's terminal; the exit code of the shell
        (or of ``command``)."""
        spec = self._spec(job, "shell", "build", command)
        host = self.opened.runtime.name == "host"
        spec.env["SHELL"] = os.environ.get("SHELL", "/bin/sh") if host else "/bin/bash"
        if tty and os.environ.get("TERM"):
            spec.env["TERM"] = os.environ["TERM"]
        try:
            return self.opened.runtime.attach(spec, tty)
        finally:
            self.opened.runtime.cleanup()

    def getvar(self, job: BoardJob, names: list[str], recipe: str | None = None) -> BoardValues:
        """``names`` as the board's BitBake resolves them (parse only, BB_NO_NETWORK)."""
        d = self.runner.board_dir(job)
        self.runner.prepare_board(job, self.identity)
        probe = d / "kas" / "buildctl-getvar.py"
        shutil.copyfile(getvar_probe.__file__, probe)
        own(probe, self.opened.owner)
        command = shlex.join(["python3", str(probe), *(["--recipe", recipe] if recipe else []),
                              *names])
        spec = self._spec(job, "getvar", "parse-only", command)
        secrets = {n: spec.env[n] for n in secret_variables() if spec.env.get(n)}
        lines: list[str] = []
        try:
            code = self.opened.runtime.run(spec, lines.append)
        finally:
            self.opened.runtime.cleanup()
        log = d / "logs" / "getvar.log"  # what kas and BitBake said, secrets taken out
        write_atomic(log, "".join(redact(ln, secrets) + "\n" for ln in lines
                                  if not ln.startswith(getvar_probe.MARKER)), owner=self.opened.owner)
        result = read_probe(job.name, lines, code, secrets)
        if result.error:
            result.error += f" (log: {log})"
        return result


def read_probe(board: str, lines: list[str], code: int, secrets: dict[str, str]) -> BoardValues:
    """The probe's answer, with every secret value taken out before anything is shown."""
    out = BoardValues(board=board)
    found = next((ln for ln in reversed(lines) if ln.startswith(getvar_probe.MARKER)), None)
    if found is None:
        out.error = f"the build environment could not be entered: {why_failed(lines, code, secrets)}"
        return out
    data = json.loads(found[len(getvar_probe.MARKER):])
    out.tool = data.get("tool", "")
    for name, value in data.get("values", {}).items():
        if name in secrets:
            out.values[name] = REDACTED
            out.redacted.append(name)
            continue
        clean = redact(value, secrets)
        if clean != value:
            out.redacted.append(name)
        out.values[name] = clean
    out.errors = {n: redact(e, secrets) for n, e in data.get("errors", {}).items()}
    return out


_KAS_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [A-Z]+ +- ")


def why_failed(lines: list[str], code: int, secrets: dict[str, str]) -> str:
    """The line that says why kas or BitBake stopped: git's own ``fatal:`` (a checkout that
    could not fetch), else the last error line, else the last line."""
    text = [_KAS_PREFIX.sub("", redact(ln, secrets)).strip() for ln in lines if ln.strip()]
    for pick in ([ln for ln in text if ln.startswith("fatal:")][:1],
                 [ln for ln in text if "ERROR" in ln or "rror:" in ln][-1:], text[-1:]):
        if pick:
            return pick[0]
    return f"exit code {code}"


def redact(text: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, REDACTED)
    return text


def check_names(names: list[str]) -> list[str]:
    for n in names:
        if not re.fullmatch(_VAR, n):
            raise UserError(f"VAR: {n!r} is not a BitBake variable name")
    return names


def check_recipe(recipe: str | None) -> str | None:
    """--recipe is a recipe (PN) or a provider name, never a path or an option of bitbake."""
    if recipe is not None and not re.fullmatch(_RECIPE, recipe):
        raise UserError(f"--recipe: {recipe!r} is not a recipe name")
    return recipe

