"""Private layer repositories over SSH: a real sshd on 127.0.0.1 serves a private layer, a key
sits in an ssh-agent started by the test. validate, doctor and the build's checkout phase
(host runtime: kas checkout) reach it with the agent and fail in one line naming the
repository without it; the bitbake phase never sees the agent, and the key, the agent socket
path and any token appear in no output, kas file, log or report."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from buildctl.builder.caches import CacheSettings
from buildctl.builder.runner import BoardJob, BoardRunner, BuildOptions
from buildctl.builder.runtime import get_runtime
from buildctl.cli import main
from buildctl.layers.gitauth import GitAuth
from buildctl.secrets import SecretRef
from build_fixtures import INIT_SCRIPT, commit_all, init_repo
from tests.helpers.products import core_repo, layer_conf, make_repo, write_yaml, board_data
from tests.helpers.skips import tool
from tests.helpers.ssh_git_server import SshGitServer

FAKE_BITBAKE = """#!/bin/sh
# what the bitbake phase sees: its whole environment
env > "$BUILDDIR/bitbake-env.txt"
echo "NOTE: stand-in bitbake $*"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tool("kas", "pip install kas")
    root = tmp_path_factory.mktemp("private")
    server = SshGitServer(root / "ssh")
    try:
        layer = root / "src" / "meta-private"
        commit = make_repo(layer, {"conf/layer.conf": layer_conf("private", depends=["core"]),
                                   "conf/machine/secretboard.conf": "# machine\n"})
        url = server.publish(layer, "meta-private.git")
        poky = root / "src" / "poky"
        poky_commit = core_repo(poky, machines=("secretboard",))
        product_dir = root / "product"
        (product_dir / "keys").mkdir(parents=True)
        (product_dir / "keys" / "known_hosts").write_text(server.known_hosts.read_text())
        write_yaml(product_dir / "machines" / "secretboard.yml", board_data("secretboard", repos={
            "meta-private": {"url": url, "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}}}}))
        product = write_yaml(product_dir / "products" / "demo.yml", {
            "name": "demo", "series": "scarthgap", "distro": "poky", "target": "core-image-minimal",
            "repos": {"poky": {"url": poky.as_uri(), "layers": ["meta", "meta-poky"],
                               "refs": {"scarthgap": {"branch": "scarthgap", "commit": poky_commit}}}},
            "boards": ["secretboard"], "release": {"version": "1.0"},
            "fetch": {"known_hosts": "../keys/known_hosts"},
        })
        yield {"server": server, "url": url, "commit": commit, "product": product, "root": root}
    finally:
        server.close()


def _secrets(world) -> list[str]:
    """What must never be written anywhere: the private key, the agent socket's path."""
    key = world["server"].client_key.read_text()
    body = "".join(key.strip().splitlines()[1:-1])
    return [body[:40], body[-40:], world["server"].agent_socket]


def _grep(paths, needles) -> list[str]:
    hits = []
    for base in paths:
        for f in [base] if base.is_file() else base.rglob("*"):
            if f.is_file() and not f.is_symlink():
                text = f.read_bytes()
                hits += [f"{f}: {n}" for n in needles if n.encode() in text]
    return hits


def _agent(monkeypatch, world, on: bool) -> None:
    if on:
        monkeypatch.setenv("SSH_AUTH_SOCK", world["server"].agent_socket)
    else:
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.mark.parametrize("agent", [True, False])
def test_validate_clones_the_private_layer_with_the_agent_only(world, capsys, monkeypatch, agent):
    _agent(monkeypatch, world, agent)
    code = main(["validate", str(world["product"]), "--json"])
    out = capsys.readouterr()
    findings = json.loads(out.out)["findings"]
    unavailable = [f for f in findings if f["code"] == "repo-unavailable"]
    if agent:
        assert unavailable == [] and code == 0, findings
    else:
        (f,) = unavailable
        assert code == 1 and f["message"].startswith("repo meta-private: cannot clone ssh://")
        assert "Permission denied (publickey)" in f["message"] and "\n" not in f["message"]
    assert not any(n in out.out + out.err for n in _secrets(world))


def test_host_keys_are_checked_strictly(world, capsys, monkeypatch, tmp_path):
    """A known_hosts that does not hold the server's key: refused even with the agent."""
    _agent(monkeypatch, world, True)
    data = yaml.safe_load(world["product"].read_text())
    other = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    pub = (tmp_path / "k.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{world['server'].port} {pub[0]} {pub[1]}\n")
    data["fetch"] = {"known_hosts": str(other)}
    bad = write_yaml(world["product"].with_name("otherkey.yml"), data)
    assert main(["validate", str(bad), "--json"]) == 1
    (f,) = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["code"] == "repo-unavailable"]
    assert f["message"].startswith("repo meta-private: cannot clone ssh://")
    assert "REMOTE HOST IDENTIFICATION" in f["message"] or "Host key verification failed" in f["message"]


@pytest.mark.parametrize("agent", [True, False])
def test_doctor_names_each_unreachable_repository_in_one_line(world, capsys, monkeypatch, agent):
    _agent(monkeypatch, world, agent)
    main(["doctor", "--product", str(world["product"]), "--runtime", "host", "--json"])
    out = capsys.readouterr().out
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["repo:poky"]["ok"]
    assert checks["repo:meta-private"]["ok"] is agent
    if not agent:
        detail = checks["repo:meta-private"]["detail"]
        assert "Permission denied (publickey)" in detail and "SSH_AUTH_SOCK is not set" in detail
        assert "\n" not in detail
    main(["doctor", "--product", str(world["product"]), "--runtime", "host"])
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if "repo:meta-private" in ln]
    assert len(lines) == 1 and ("FAIL" in lines[0]) is not agent
    assert not any(n in out + text for n in _secrets(world))


# -- the build's checkout phase (host runtime) ------------------------------------------------
@pytest.fixture(scope="module")
def stand_in_poky(world):
    """oe-init-build-env and a bitbake that records its environment."""
    repo = world["root"] / "src" / "stand-in-poky"
    init_repo(repo)
    (repo / "oe-init-build-env").write_text(INIT_SCRIPT)
    (repo / "bitbake" / "bin").mkdir(parents=True)
    (repo / "bitbake" / "bin" / "bitbake").write_text(FAKE_BITBAKE)
    os.chmod(repo / "bitbake" / "bin" / "bitbake", 0o755)
    (repo / "meta" / "conf").mkdir(parents=True)
    (repo / "meta" / "conf" / "layer.conf").write_text("# stand-in\n")
    return repo, commit_all(repo)


def _checkout(world, stand_in_poky, tmp_path, agent: bool, token_env: str | None = None):
    poky, poky_commit = stand_in_poky
    kas = write_yaml(tmp_path / "composed" / "secretboard.yml", {
        "header": {"version": 14}, "machine": "secretboard", "distro": "poky",
        "target": "core-image-minimal",
        "repos": {"poky": {"url": poky.as_uri(), "commit": poky_commit, "layers": {"meta": None}},
                  "meta-private": {"url": world["url"], "commit": world["commit"]}}})
    tokens = ()
    if token_env:
        from buildctl.layers.gitauth import Token
        tokens = (Token("https://git.example.invalid/private.git", SecretRef("env", token_env)),)
    auth = GitAuth(known_hosts=world["server"].known_hosts,
                   agent_socket=world["server"].agent_socket if agent else None, ssh=True,
                   tokens=tokens)
    job = BoardJob("secretboard", "secretboard", "release", kas,
                   repos={"poky": {"url": poky.as_uri(), "commit": poky_commit},
                          "meta-private": {"url": world["url"], "commit": world["commit"]}},
                   fetch_auth=auth)
    cache = tmp_path / "cache"
    caches = CacheSettings(sstate_dir=cache / "sstate", dl_dir=cache / "dl", repo_ref_dir=cache / "git")
    owner = (os.getuid(), os.getgid())
    opts = BuildOptions(out_dir=tmp_path / "out", owner=owner, mode="parse-only", series="scarthgap")
    for p in (caches.sstate_dir, caches.dl_dir, caches.repo_ref_dir):
        p.mkdir(parents=True)
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "buildctl-fetch-*")))
    runner = BoardRunner(get_runtime("host"), caches, opts, {"runtime": "host"})
    rep = runner.run(job, runner.new_report(job))
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "buildctl-fetch-*")))
    assert after <= before, "the checkout's credentials directory was left behind"
    return rep, tmp_path / "out" / job.key, kas


def test_checkout_phase_fetches_with_the_agent_and_bitbake_never_sees_it(world, stand_in_poky,
                                                                           tmp_path, monkeypatch):
    monkeypatch.setenv("BUILDCTL_TEST_TOKEN", "tok-3f9c2a1b7d")
    rep, d, kas = _checkout(world, stand_in_poky, tmp_path, agent=True, token_env="BUILDCTL_TEST_TOKEN")
    assert rep.status == "succeeded", rep.message
    assert [p.name for p in rep.phases] == ["checkout", "parse"]
    assert rep.layers["meta-private"]["checked_out"] == world["commit"]
    text = (d / "work" / "build" / "bitbake-env.txt").read_text()
    env = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    assert not {"SSH_AUTH_SOCK", "NETRC_FILE", "GIT_CREDENTIAL_HELPER", "GIT_SSH_COMMAND"} & set(env)
    assert "buildctl-fetch-" not in text and world["server"].agent_socket not in text
    leaks = _grep([d, kas, tmp_path / "cache"], _secrets(world) + ["tok-3f9c2a1b7d"])
    assert leaks == []


def test_checkout_without_the_agent_fails_in_one_line_naming_the_repository(world, stand_in_poky,
                                                                            tmp_path):
    rep, d, kas = _checkout(world, stand_in_poky, tmp_path, agent=False)
    assert rep.status == "failed"
    assert [p.name for p in rep.phases] == ["checkout"]  # bitbake never ran
    assert "\n" not in rep.message and rep.message.startswith("checkout: ")
    assert rep.message.startswith("checkout: repo meta-private (ssh://"), rep.message
    assert "Permission denied (publickey)" in rep.message and "SSH_AUTH_SOCK is not set" in rep.message
    assert _grep([d, kas], _secrets(world)) == []


def test_build_jobs_carry_credentials_only_for_boards_with_private_repositories(world, tmp_path,
                                                                              monkeypatch):
    from buildctl.builder.jobs import from_product
    from buildctl.settings import Settings

    monkeypatch.setenv("SSH_AUTH_SOCK", world["server"].agent_socket)
    target = from_product(world["product"], [], None, tmp_path / "compose",
                          settings=Settings.from_environ())
    (job,) = target.jobs
    assert job.fetch_auth is not None and job.fetch_auth.names == ("meta-private",)
    assert job.fetch_auth.known_hosts == world["product"].parent.parent / "keys" / "known_hosts"
    assert _grep([tmp_path / "compose"], _secrets(world)) == []


def test_https_token_reaches_git_through_its_environment_never_argv(monkeypatch, tmp_path):
    """The host's git gets an HTTPS token from an inline credential helper reading the git
    process's environment: `git credential fill` (real git) answers with it."""
    monkeypatch.setenv("BUILDCTL_TEST_TOKEN", "ci-bot:tok-77aa")
    from buildctl.layers.gitauth import Token

    url = "https://git.example.invalid/group/private.git"
    auth = GitAuth(tokens=(Token(url, SecretRef("env", "BUILDCTL_TEST_TOKEN")),))
    args, env = auth.host_git(url)
    assert not any("tok-77aa" in a for a in args)
    r = subprocess.run(["git", *args, "credential", "fill"], input=f"url={url}\n\n",
                       capture_output=True, text=True, env={**os.environ, **env,
                                                            "GIT_CONFIG_GLOBAL": os.devnull})
    assert "username=ci-bot" in r.stdout and "password=tok-77aa" in r.stdout
    material = auth.checkout_material([], (os.getuid(), os.getgid()))
    try:
        netrc = Path(material.env["NETRC_FILE"])
        assert oct(netrc.stat().st_mode & 0o777) == "0o600"
        assert "machine git.example.invalid" in netrc.read_text()
    finally:
        GitAuth.discard(material)
    assert not material.directory.exists()


def test_container_runs_mount_the_agent_and_credentials_for_the_checkout_only(world, tmp_path,
                                                                               monkeypatch):
    """What a container runtime is asked to run, phase by phase (docker maps these RunSpecs
    1:1 to binds and environment): the checkout alone gets the agent socket, the known_hosts
    copy, the netrc and its git configuration."""
    monkeypatch.setenv("BUILDCTL_TEST_TOKEN", "tok-5e6f")
    from buildctl.layers.gitauth import Token

    specs = []

    class Recording:
        name = "docker"

        def run(self, spec, on_line):
            present = {str(m.path): m.path.exists() for m in spec.mounts}
            specs.append((spec, present))
            return 0

    auth = GitAuth(known_hosts=world["server"].known_hosts, agent_socket=world["server"].agent_socket,
                   ssh=True, credential_helper="cache --timeout 60",
                   tokens=(Token("https://git.example.invalid/p.git",
                                 SecretRef("env", "BUILDCTL_TEST_TOKEN")),))
    kas = write_yaml(tmp_path / "board.yml", {"header": {"version": 14}, "machine": "secretboard",
                                              "repos": {"meta-private": {"url": world["url"]}}})
    job = BoardJob("secretboard", "secretboard", "release", kas,
                   repos={"meta-private": {"url": world["url"], "commit": world["commit"]}},
                   fetch_auth=auth)
    caches = CacheSettings(tmp_path / "s", tmp_path / "d", tmp_path / "g", hermetic=True)
    opts = BuildOptions(out_dir=tmp_path / "out", owner=(os.getuid(), os.getgid()),
                        mode="build", series="scarthgap")
    runner = BoardRunner(Recording(), caches, opts, {"runtime": "docker"})
    runner._collect = lambda job, rep: None
    runner._release = lambda job, rep: []
    rep = runner.run(job)
    assert rep.status == "succeeded", rep.message
    names = [s.name.rsplit("-", 1)[1] for s, _ in specs]
    assert names == ["checkout", "fetch", "build"]
    (checkout, present), *bitbake = specs
    sock = world["server"].agent_socket
    assert checkout.env["SSH_AUTH_SOCK"] == sock and present[sock]
    cred_dir = Path(checkout.env["NETRC_FILE"]).parent
    assert present[str(cred_dir)] and any(m.path == cred_dir and m.read_only for m in checkout.mounts)
    assert Path(checkout.env["GITCONFIG_FILE"]).parent == cred_dir
    assert checkout.env["GIT_CREDENTIAL_HELPER"] == "cache --timeout 60"  # kas's own variable
    assert not cred_dir.exists()  # removed once the checkout ended
    for spec, _ in bitbake:
        assert not {"SSH_AUTH_SOCK", "NETRC_FILE", "GIT_CREDENTIAL_HELPER"} & set(spec.env)
        assert all(str(m.path) != sock and m.path != cred_dir for m in spec.mounts)
        assert not str(spec.env["GITCONFIG_FILE"]).startswith(str(cred_dir))
    assert _grep([tmp_path / "out"], _secrets(world) + ["tok-5e6f"]) == []


@pytest.mark.parametrize("repo, message", [
    ({"url": "https://ci:s3cr3t@git.example.invalid/p.git"}, "holds a password or token"),
    ({"url": "ssh://git@git.example.invalid/p.git", "credentials": "env:TOKEN"},
     "credentials are for https:// URLs"),
    ({"url": "https://git.example.invalid/p.git", "credentials": "hunter2"}, "credentials"),
])
def test_credentials_are_references_never_values(tmp_path, capsys, repo, message):
    from tests.helpers.products import simple_product

    path = simple_product(tmp_path, boards=("qemux86-64",))
    data = yaml.safe_load(path.read_text())
    data["repos"]["private"] = {**repo, "refs": {"scarthgap": {"branch": "main"}}}
    write_yaml(path, data)
    assert main(["validate", str(path), "--offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "demo.yml:" in err and "repos.private" in err
    assert len(err.splitlines()) == 1 and "s3cr3t" not in err and "hunter2" not in err


@pytest.mark.parametrize("url, ssh", [
    ("ssh://git@host/x.git", True), ("git@github.com:o/r.git", True), ("host:path/r.git", True),
    ("git+ssh://h/r", True), ("https://h/r.git", False), ("file:///srv/r", False),
    ("/srv/r.git", False), ("git://h/r", False),
])
def test_which_urls_are_ssh(url, ssh):
    from buildctl.layers.gitauth import is_ssh_url

    assert is_ssh_url(url) is ssh


# -- HTTPS with a token ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def https_world(tmp_path_factory):
    from tests.helpers.https_git_server import HttpsGitServer

    root = tmp_path_factory.mktemp("https")
    server = HttpsGitServer(root / "srv", "ci-bot", "tok-9d1e4c")
    try:
        layer = root / "src" / "meta-https"
        commit = make_repo(layer, {"conf/layer.conf": layer_conf("partner", depends=["core"])})
        url = server.publish(layer, "meta-https.git")
        from tests.helpers.products import simple_product

        path = simple_product(root / "product", boards=("qemux86-64",))
        data = yaml.safe_load(path.read_text())
        data["repos"]["meta-https"] = {"url": url, "credentials": "env:BUILDCTL_TEST_HTTPS_TOKEN",
                                       "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}}}
        write_yaml(path, data)
        yield {"server": server, "product": path}
    finally:
        server.close()


@pytest.mark.parametrize("token, ok", [("ci-bot:tok-9d1e4c", True), ("ci-bot:tok-wrong1", False)])
def test_https_token_from_a_reference_clones_and_doctor_checks_it(https_world, capsys, monkeypatch,
                                                                  token, ok):
    monkeypatch.setenv("GIT_SSL_CAINFO", str(https_world["server"].cert))
    monkeypatch.setenv("BUILDCTL_TEST_HTTPS_TOKEN", token)
    seen = len(https_world["server"].requests)
    code = main(["validate", str(https_world["product"]), "--json"])
    out = capsys.readouterr()
    bad = [f for f in json.loads(out.out)["findings"] if f["code"] == "repo-unavailable"]
    if ok:
        assert code == 0 and bad == []
    else:
        (f,) = bad
        assert code == 1 and f["message"].startswith("repo meta-https: cannot clone https://")
        assert "Authentication failed" in f["message"]
    main(["doctor", "--product", str(https_world["product"]), "--runtime", "host", "--json"])
    doctor = capsys.readouterr()
    checks = {c["name"]: c for c in json.loads(doctor.out)["checks"]}
    assert checks["repo:meta-https"]["ok"] is ok
    secret = token.split(":")[1]
    assert secret not in out.out + out.err + doctor.out + doctor.err
    # the server saw the token (HTTP Basic) exactly when it was the right one
    assert any(auth for _, auth in https_world["server"].requests[seen:]) is ok



# -- buildctl shell / getvar on a board with a private layer ----------------------------------
class _Recorder:
    """A container runtime that records what it is asked to run (docker maps these RunSpecs
    1:1 to binds and environment); the checkout answers ``checkout_code``."""

    name = "docker"

    def __init__(self, checkout_code: int = 0, checkout_lines=()):
        self.specs, self.checkout_code, self.checkout_lines = [], checkout_code, checkout_lines

    def prepare(self):
        return {"runtime": "docker"}

    def _record(self, spec):
        self.specs.append((spec, {str(m.path): m.path.exists() for m in spec.mounts}))

    def run(self, spec, on_line):
        self._record(spec)
        if spec.name.endswith("-checkout"):
            for line in self.checkout_lines:
                on_line(line)
            return self.checkout_code
        return 0

    def attach(self, spec, tty):
        self._record(spec)
        return 0

    def cleanup(self):
        pass


def _session(world, tmp_path, monkeypatch, runtime, agent: bool):
    from buildctl.builder import session as session_mod
    from buildctl.builder.api import BuildArgs, Opened
    from buildctl.builder.jobs import from_product
    from buildctl.settings import Settings

    monkeypatch.setenv("SSH_AUTH_SOCK", world["server"].agent_socket if agent else "")
    target = from_product(world["product"], [], None, tmp_path / "compose",
                          settings=Settings.from_environ())
    caches = CacheSettings(tmp_path / "s", tmp_path / "d", tmp_path / "g", hermetic=True)
    opened = Opened(target=target, caches=caches, runtime=runtime, out=tmp_path / "out",
                    owner=(os.getuid(), os.getgid()))
    monkeypatch.setattr(session_mod, "open_target", lambda args: opened)
    monkeypatch.setattr(session_mod, "preflight_all", lambda *a: None)
    return session_mod.Session(BuildArgs(product=world["product"]))


def test_shell_checks_private_layers_out_first_and_the_shell_never_sees_the_agent(
        world, tmp_path, monkeypatch):
    runtime = _Recorder()
    s = _session(world, tmp_path, monkeypatch, runtime, agent=True)
    (job,) = s.jobs
    assert s.shell(job, "bitbake -e", tty=False) == 0
    (checkout, present), (shell, _) = runtime.specs
    assert checkout.name.endswith("-checkout") and checkout.argv[:2] == ["kas", "checkout"]
    sock = world["server"].agent_socket
    assert checkout.env["SSH_AUTH_SOCK"] == sock and present[sock]
    cred_dir = Path(checkout.env["GITCONFIG_FILE"]).parent  # the checkout's own git config
    assert cred_dir.name.startswith("buildctl-fetch-") and present[str(cred_dir)]
    assert not cred_dir.exists()  # removed once the checkout ended, before the shell started
    assert shell.argv[0] == "kas" and "shell" in shell.argv
    assert not {"SSH_AUTH_SOCK", "NETRC_FILE", "GIT_CREDENTIAL_HELPER"} & set(shell.env)
    assert all(str(m.path) != sock and m.path != cred_dir for m in shell.mounts)


def test_shell_without_the_agent_stops_at_the_checkout_naming_the_repository(
        world, tmp_path, monkeypatch):
    url = world["url"]
    runtime = _Recorder(128, [f"ERROR - Command \"git clone -q {url}\" failed",
                              "git@127.0.0.1: Permission denied (publickey).",
                              "fatal: Could not read from remote repository."])
    s = _session(world, tmp_path, monkeypatch, runtime, agent=False)
    (job,) = s.jobs
    with pytest.raises(Exception) as exc:
        s.shell(job, None, tty=False)
    message = str(exc.value)
    assert "\n" not in message and message.startswith("secretboard: checkout: repo meta-private (")
    assert "Permission denied (publickey)" in message and "SSH_AUTH_SOCK is not set" in message
    assert [spec.name.rsplit("-", 1)[1] for spec, _ in runtime.specs] == ["checkout"]  # no shell
