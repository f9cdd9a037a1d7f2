"""BitBake's own hash-equivalence server (``bin/bitbake-hashserv``), from the product's pinned bitbake.

One server for every runner: SQLite for one host (``--database FILE``); BitBake's SQLAlchemy
backend takes a database URL instead (``postgresql+asyncpg://...``, which needs SQLAlchemy and
asyncpg beside bitbake). Untrusted jobs (pull requests) get a read-only server (``--read-only``):
they read equivalences, they never report them. It listens on 127.0.0.1 only.
"""
from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from buildctl.errors import UserError

HOST = "127.0.0.1"


@dataclass(frozen=True)
class HashServConfig:
    bitbake: Path  # a bitbake tree (bin/bitbake-hashserv, lib/hashserv)
    database: str  # SQLite file, or an SQLAlchemy URL
    port: int = 8686
    read_only: bool = False
    upstream: str | None = None
    log_level: str = "WARNING"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def argv(self) -> list[str]:
        argv = [sys.executable, str(self.bitbake / "bin" / "bitbake-hashserv"), "--bind",
                self.address, "--database", self.database, "--log", self.log_level]
        if self.read_only:
            argv.append("--read-only")
        if self.upstream:
            argv += ["--upstream", self.upstream]
        return argv


# What BitBake's SQLAlchemy backend imports, per database URL driver (the part of the scheme
# after "+"; bare "postgresql" is SQLAlchemy's psycopg2 default, which is not async).
SQL_DRIVERS = {
    "postgresql+asyncpg": ("sqlalchemy", "greenlet", "asyncpg"),
    "postgresql+psycopg": ("sqlalchemy", "greenlet", "psycopg"),
    "sqlite+aiosqlite": ("sqlalchemy", "greenlet", "aiosqlite"),
    "mysql+aiomysql": ("sqlalchemy", "greenlet", "aiomysql"),
}


def check_database_url(url: str) -> None:
    """A database URL must name an async driver this interpreter can import (bitbake-hashserv
    runs under it): else one line now instead of the server's traceback later."""
    scheme = url.split("://", 1)[0]
    modules = SQL_DRIVERS.get(scheme)
    if modules is None:
        raise UserError(f"--database: {scheme}:// is not a driver BitBake's SQL backend can use "
                        f"(one of: {', '.join(sorted(SQL_DRIVERS))})")
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        raise UserError(f"--database {scheme}://: needs the Python package(s) "
                        f"{' and '.join(absent)} beside buildctl (pip install "
                        f"'buildctl[hashserv-sql]')")


def shown(database: str) -> str:
    """The database as printed: a URL's password never reaches a log."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", database)


def check_tree(bitbake: Path) -> Path:
    if not (bitbake / "bin" / "bitbake-hashserv").is_file() or \
            not (bitbake / "lib" / "hashserv").is_dir():
        raise UserError(f"{bitbake}: not a bitbake tree (no bin/bitbake-hashserv)")
    return bitbake


def export_commit(git_dir: Path, commit: str, dest: Path) -> Path:
    """``git archive`` of one commit into ``dest`` (kept: the same commit is exported once)."""
    if (dest / "bin" / "bitbake-hashserv").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tempfile.TemporaryFile() as fh:
            proc = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "--format=tar",
                                   commit], stdout=fh, stderr=subprocess.PIPE, text=False)
            if proc.returncode != 0:
                raise UserError(f"bitbake {commit}: git archive failed: "
                                f"{proc.stderr.decode(errors='replace').strip()[-200:]}")
            fh.seek(0)
            with tarfile.open(fileobj=fh) as tar:
                tar.extractall(tmp, filter="data")
        tmp.rename(dest)
    except BaseException:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        raise
    return dest


def pinned_bitbake(product, cache, export_root: Path) -> Path:
    """The product's bitbake at its pinned commit, exported under ``export_root``."""
    repo = product.repos.get("bitbake")
    if repo is None:
        raise UserError(f"{product.path}: repos: no `bitbake` repository (give --bitbake DIR)")
    if repo.is_local:
        return check_tree(Path(repo.path))
    ref = repo.ref(product.series)
    if ref is None or not ref.commit:
        raise UserError(f"{product.path}: repos.bitbake: no pinned commit for {product.series} "
                        "(give --bitbake DIR)")
    git_dir = cache.ensure_commit(repo, ref.commit)
    return check_tree(export_commit(git_dir, ref.commit, export_root / f"bitbake-{ref.commit}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class HashServer:
    """A running ``bitbake-hashserv``; ``with HashServer(cfg) as srv:`` stops it on exit."""

    def __init__(self, cfg: HashServConfig) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30, stdout=subprocess.DEVNULL) -> "HashServer":
        check_tree(self.cfg.bitbake)
        if "://" in self.cfg.database:
            check_database_url(self.cfg.database)
        else:
            Path(self.cfg.database).parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.cfg.argv(), stdout=stdout, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() or "").strip().splitlines()
                raise UserError(f"bitbake-hashserv exited ({self.proc.returncode}): "
                                f"{err[-1] if err else 'no output'}")
            try:
                with socket.create_connection((HOST, self.cfg.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise UserError(f"bitbake-hashserv did not listen on {self.cfg.address}")
                time.sleep(0.1)

    def wait(self) -> int:
        return self.proc.wait() if self.proc else 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "HashServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
