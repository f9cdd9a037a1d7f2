"""Real BitBake 2.8 + openembedded-core (scarthgap) from the kit, through `buildctl build`.

`buildctl build --dry-run` of a plain OE-core configuration in the full `scarthgap` builder image
(about 4 minutes to build cold, cached by its tag): real kas checks out bitbake and
openembedded-core at the product's pinned commits, real BitBake parses and plans, and the build's
shared hash-equivalence server is the checkout's own bin/bitbake-hashserv.

The kit's repositories are shallow, and kas clones with `--reference` to buildctl's mirror
cache, which git refuses for a shallow repository; they also belong to root, which git refuses
as a clone source for another user. So the tree of each pinned commit is exported (the real
files, exactly) into a fresh one-commit repository owned by the build's user.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from buildctl.builder.runtime.base import resolve_owner
from tests.helpers import skips

WT = Path(__file__).resolve().parents[2]
PINS = yaml.safe_load((WT / "products" / "demo.yml").read_text())["repos"]
KIT_DIRS = {"bitbake": "git.openembedded.org.bitbake",
            "openembedded-core": "git.openembedded.org.openembedded-core"}

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _exported_repos(dest: Path, owner: tuple[int, int]) -> dict[str, tuple[Path, str]]:
    """name -> (repository, its commit) holding the tree of the product's pinned commit."""
    out = {}
    git = ["git", "-c", "safe.directory=*", "-c", "user.name=test", "-c", "user.email=t@t.invalid"]
    for name, kit_dir in KIT_DIRS.items():
        src = skips.kit_repo(kit_dir)
        repo = dest / name
        repo.mkdir(parents=True)
        tree = subprocess.run([*git, "--git-dir", str(src), "archive", "--format=tar",
                               PINS[name]["refs"]["scarthgap"]["commit"]],
                              check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(repo)], input=tree, check=True)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "export"]):
            subprocess.run([*git, "-C", str(repo), *args], check=True, capture_output=True)
        head = subprocess.run([*git, "-C", str(repo), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        out[name] = (repo, head)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(dest)], check=True)
    return out


def test_real_bitbake_parses_and_plans_with_shared_caches(tmp_path, docker_engine):
    import docker

    from buildctl.builder.image import ImageSpec, ensure_image

    image = ensure_image(docker.DockerClient(base_url=docker_engine, timeout=1800),
                         ImageSpec(profile="scarthgap"), log=lambda m: None).tag
    os.chmod(tmp_path, 0o755)
    for p in tmp_path.parents:
        if str(p).startswith("/tmp/") and p.stat().st_uid == os.getuid():
            os.chmod(p, p.stat().st_mode | 0o055)
    repos = _exported_repos(tmp_path / "repos", resolve_owner())
    kas = tmp_path / "oe.yml"
    kas.write_text(yaml.safe_dump({
        "header": {"version": 14}, "machine": "qemux86-64", "distro": "nodistro",
        "target": "core-image-minimal",
        "repos": {"bitbake": {"url": f"file://{repos['bitbake'][0]}", "commit": repos["bitbake"][1],
                              "layers": {".": "disabled"}},
                  "openembedded-core": {"url": f"file://{repos['openembedded-core'][0]}",
                                        "commit": repos["openembedded-core"][1],
                                        "layers": {"meta": None}}},
        "local_conf_header": {"offline": 'CONNECTIVITY_CHECK_URIS = ""\n'}}))
    env = dict(os.environ, PYTHONPATH=str(WT), BUILDCTL_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "buildctl", "build", str(kas), "--dry-run",
                        "--image", image, "--out", str(tmp_path / "out"), "--json"],
                       env=env, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    data = json.loads(r.stdout)
    board = data["boards"][0]
    assert data["hashserve"]["mode"] == "shared"
    assert data["hashserve"]["server"].endswith("bitbake/bin/bitbake-hashserv")
    assert board["bitbake"]["tasks_total"] > 1000 and board["bitbake"]["errors"] == []
    assert Path(data["hashserve"]["database"]).is_file()
