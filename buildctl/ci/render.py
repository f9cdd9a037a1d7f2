"""Write a ``Pipeline`` in one CI system's format, from ``templates/<provider>.j2``.

Output is deterministic: it depends only on the manifest, the builder image and the options,
never on the time, the host or the order of dictionaries.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import jinja2

from buildctl.ci.plan import PROVIDERS, Pipeline
from buildctl.errors import UserError

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_FILES = {"jenkins": "Jenkinsfile", "github": ".github/workflows/buildctl.yml",
                 "gitlab": ".gitlab-ci.yml"}


def _groovy(text: str) -> str:
    """A single-quoted Groovy string (no interpolation)."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _yaml(text: str) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text))


def _sh(text: str) -> str:
    return shlex.quote(str(text))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(groovy=_groovy, yq=_yaml, sh=_sh)
    return env


def commands(p: Pipeline) -> dict:
    """The shell commands every provider runs, written once."""
    bc = ".venv/bin/buildctl"
    rel = p.release_dir
    # boards no device test covers pass the gate by name; every other board must have passed
    untested = "".join(f" --untested-board {_sh(b)}" for b in p.untested)
    out = {
        "setup": "python3 -m venv .venv && .venv/bin/pip install --quiet .",
        "image": f"{bc} container build",
        "release": f"{bc} release {_sh(p.manifest)} --variant {_sh(p.variant)}{untested}",
        "publish": f"{bc} publish {_sh(rel)} --product {_sh(p.manifest)}{untested}",
    }
    if p.push_mirror:
        out["push"] = f"{bc} cache push {shell_path(p.sstate_dir)} {_sh(p.push_mirror)}"
        if p.push_hashserv:  # the mirror remembers its server; another one is refused
            out["push"] += f" --hashserv {_sh(p.push_hashserv)}"
    if p.rollout:
        base = (f"{bc} rollout {_sh(rel)} --server {_sh(p.rollout['server'])} "
                f"--token {_sh(p.rollout['token_ref'])}{untested}")
        out["canary"] = f"{base} --stages {_sh(p.rollout['canary'] + ':group=' + p.rollout['canary'])}"
        out["field"] = f"{base} --stages {_sh(p.rollout['field'] + ':group=' + p.rollout['field'])}"
    return out


def build_command(p: Pipeline, job) -> str:
    return (f".venv/bin/buildctl build {_sh(p.manifest)} --board {_sh(job.board)} "
            f"--variant {_sh(job.variant)} --image {_sh(p.image)} --out {_sh('out/' + p.product)}")


def test_command(p: Pipeline, job) -> str:
    """`buildctl test` of a board's deploy outputs: in QEMU on the runner, or in the lab."""
    cmd = (f".venv/bin/buildctl test {_sh(p.manifest)} --board {_sh(job.board)} "
           f"--variant {_sh(job.variant)} --out {_sh('out/' + p.product)} --junit {_sh(job.junit)}")
    if job.runner == "lava":
        cmd += (f" --lava {_sh(p.lava['url'])} --image-url {_sh(p.lava['images'])}"
                f" --lava-token {_sh(p.lava['token_ref'])}")
    return cmd


def file_secret_command(secret, source: str) -> str:
    """Put a file secret where the manifest expects it (mode 600)."""
    return f"install -D -m 600 {source} {_sh(secret.path)}"


def write_secret_command(secret) -> str:
    """Write a file secret held as text in ``$NAME`` where the manifest expects it (mode 600)."""
    parent = str(Path(secret.path).parent)
    return (f"umask 077 && mkdir -p {_sh(parent)} && "
            f"printf '%s\\n' \"${secret.name}\" > {_sh(secret.path)}")


def shell_path(path: str) -> str:
    """A path for the shell, ``~/`` kept as the user's home."""
    if path.startswith("~/"):
        return '"$HOME"/' + _sh(path[2:])
    return _sh(path)


def render(p: Pipeline, provider: str, *, generated_by: str) -> str:
    if provider not in PROVIDERS:
        raise UserError(f"--provider: {provider!r} is not one of {', '.join(PROVIDERS)}")
    leaders = [b for b in p.builds if b.after is None]
    followers = [b for b in p.builds if b.after is not None]
    released = [b for b in p.builds if b.variant == p.variant]
    tpl = _env().get_template(f"{provider}.j2")
    return tpl.render(p=p, cmd=commands(p), build_command=lambda j: build_command(p, j),
                      test_command=lambda j: test_command(p, j),
                      qemu_packages=sorted({pkg for t in p.tests for pkg in t.packages}),
                      file_secret_command=file_secret_command,
                      write_secret_command=write_secret_command, cache_dl=p.dl_dir, dl_sh=shell_path(p.dl_dir), leaders=leaders,
                      followers=followers, released=released, generated_by=generated_by)
