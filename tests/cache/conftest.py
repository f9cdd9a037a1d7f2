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


