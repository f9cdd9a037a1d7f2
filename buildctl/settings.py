"""Settings that come from the environment, read once at the command line's edge.

The library never reads ``os.environ`` for its own configuration: ``cli.main`` builds one
``Settings`` from the environment and the verbs pass its values down as plain arguments.
(Environments handed to child processes, and secrets named by ``env:`` references, are
different things: they are data the user gave, not settings.)
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_ROOT = Path("~/.cache/buildctl")


@dataclass(frozen=True)
class Settings:
    cache_root: Path  # BUILDCTL_CACHE_DIR: sstate, downloads and mirrors default under it
    git_cache: Path  # BUILDCTL_GIT_CACHE: buildctl's bare clones of layer repositories
    repo_ref_dir: Path | None  # KAS_REPO_REF_DIR: reference mirrors (read only)
    log_dir: Path  # BUILDCTL_LOG_DIR: where internal-error tracebacks go
    source_date_epoch: str | None  # SOURCE_DATE_EPOCH, as given (checked where it is used)
    # private layer repositories (fetch/checkout only, never the bitbake phase)
    ssh_auth_sock: str | None = None  # SSH_AUTH_SOCK: the caller's SSH agent
    git_credential_helper: str | None = None  # GIT_CREDENTIAL_HELPER (kas's name)
    home: Path | None = None  # HOME: ~/.ssh/known_hosts
    # BUILDCTL_PKCS11_MODULE: the PKCS#11 library for pkcs11: key URIs without module-path
    pkcs11_module: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def path(name: str, default: Path) -> Path:
            return Path(env.get(name) or default).expanduser()

        cache_root = path("BUILDCTL_CACHE_DIR", DEFAULT_CACHE_ROOT)
        state = Path(env.get("XDG_STATE_HOME") or "~/.local/state").expanduser()
        return cls(
            cache_root=cache_root,
            git_cache=path("BUILDCTL_GIT_CACHE", DEFAULT_CACHE_ROOT / "git"),
            repo_ref_dir=Path(env["KAS_REPO_REF_DIR"]).expanduser()
            if env.get("KAS_REPO_REF_DIR") else None,
            log_dir=path("BUILDCTL_LOG_DIR", state / "buildctl"),
            source_date_epoch=env.get("SOURCE_DATE_EPOCH") or None,
            ssh_auth_sock=env.get("SSH_AUTH_SOCK") or None,
            git_credential_helper=env.get("GIT_CREDENTIAL_HELPER") or None,
            home=Path(env["HOME"]) if env.get("HOME") else None,
            pkcs11_module=env.get("BUILDCTL_PKCS11_MODULE") or None,
        )
