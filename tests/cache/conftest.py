"""Real servers for the cache tests: BitBake 2.8's tree from the kit (for bitbake-hashserv and
its client library) and wsgidav, each in its own process on 127.0.0.1."""
from __future__ import annotations

import io
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import skips

KIT_BITBAKE = ROOT.parent / "shared" / "yocto-kit" / "git.openembedded.org.bitbake"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bitbake_tree(tmp_path_factory) -> Path:
    """BitBake 2.8 from the kit, exported with git archive (never copied into the repo)."""
    skips.require((KIT_BITBAKE / "objects").is_dir() or (KIT_BITBAKE / ".git").exists(),
                  f"no bitbake in the kit ({KIT_BITBAKE})")
    dest = tmp_path_factory.mktemp("bitbake-2.8")
    tar = subprocess.run(["git", "-C", str(KIT_BITBAKE), "archive", "2.8"], capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest


@pytest.fixture
def webdav(tmp_path):
    tool = skips.tool("wsgidav", "pip install '.[test]'")
    root = tmp_path / "dav"
    root.mkdir()
    port = free_port()
    proc = subprocess.Popen([tool, "--host", "127.0.0.1", "--port", str(port), "--root",
                             str(root), "--auth", "anonymous", "--server", "cheroot",
                             "--no-config", "-q"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/sstate", root
    finally:
        proc.terminate()
        proc.wait(timeout=10)




PG_USER = "buildctl-bb"  # .ci/run creates it (PostgreSQL, like BitBake, refuses to run as root)


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        skips.missing("PostgreSQL server not installed", "apt-get install postgresql")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster of Debian's server: initdb + pg_ctl on a temp dir, as an
    unprivileged user, listening on 127.0.0.1 at a free port (trust auth, local only). Yields a
    function that makes a fresh database and returns its SQLAlchemy URL and a psql runner."""
    import os
    import pwd
    import shutil
    import tempfile

    bindir = _pg_bin()
    for mod in ("sqlalchemy", "greenlet", "asyncpg"):
        try:
            __import__(mod)
        except ImportError:
            skips.missing(f"Python package {mod} not installed", "pip install '.[test]'")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="buildctl-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh",
                            PG_USER], check=True, capture_output=True)
            pw = pwd.getpwnam(PG_USER)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                   "--"]
    data, port = base / "data", free_port()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(base)}

    def run(*argv, **kw):
        r = subprocess.run([*as_user, *argv], capture_output=True, text=True, env=env,
                           timeout=120, **kw)
        assert r.returncode == 0, f"{argv[0]}: {r.stdout}{r.stderr}"
        return r.stdout

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "buildctl", "--auth=trust",
            "--no-sync", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"),
            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off", "start")
        made = iter(range(1000))

        def database() -> tuple[str, callable]:
            name = f"hashserv{next(made)}"
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "buildctl",
                name)

            def psql(sql: str) -> list[list[str]]:
                out = run(str(bindir.parent / "bin" / "psql"), "-h", "127.0.0.1", "-p", str(port),
                          "-U", "buildctl", "-d", name, "-AtF", "\t", "-c", sql)
                return [line.split("\t") for line in out.splitlines()]

            return f"postgresql+asyncpg://buildctl@127.0.0.1:{port}/{name}", psql

        yield database
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
