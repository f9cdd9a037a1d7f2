"""How git reaches private layer repositories, and where credentials may go.

Private repositories are reached over SSH (``ssh://``, ``git@host:path``) with the caller's SSH
agent, or over HTTPS with a token the manifest names by reference (``credentials: env:NAME`` or
``file:PATH``; the value is ``token`` or ``user:token``), or with a git credential helper the
caller names (``GIT_CREDENTIAL_HELPER``, as kas reads it). SSH host keys are always checked
(``StrictHostKeyChecking=yes``) against the product's ``fetch.known_hosts`` or the caller's
``~/.ssh/known_hosts``; nothing is ever added to a known_hosts file.

Two users of this module:
- buildctl's own git processes on the host (clone into the git cache, fetch, ``ls-remote`` in
  doctor): :meth:`GitAuth.host_git` gives the extra ``-c`` options and environment; a token
  travels in the git process's environment to an inline credential helper, never in argv;
- the build's checkout phase: :meth:`GitAuth.checkout_material` writes, into a private
  temporary directory that only that phase mounts (and deletes afterwards), the known_hosts copy,
  a git configuration (``core.sshCommand``) and a netrc file, and names the agent socket to
  mount. The bitbake phases get none of it: no agent, no token, no netrc.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from buildctl.errors import UserError
from buildctl.manifest.model import Product, Repo
from buildctl.secrets import SecretRef

__all__ = ["GitAuth", "CheckoutMaterial", "is_ssh_url", "is_private", "explain_failure"]

_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~+-]+@)?[A-Za-z0-9._-]+:(?!//)")
SSH_CONNECT_TIMEOUT_S = 10
_TOKEN_HELPER = ('!f() { test "$1" = get || exit 0; '
                 'printf "username=%s\\npassword=%s\\n" "$BUILDCTL_GIT_USERNAME" "$BUILDCTL_GIT_TOKEN"; }; f')


def is_ssh_url(url: str | None) -> bool:
    """ssh://, git+ssh:// and scp-like ``user@host:path`` (what git itself treats as SSH)."""
    if not url:
        return False
    scheme = urlparse(url).scheme
    if scheme in ("ssh", "git+ssh", "ssh+git"):
        return True
    return not scheme.startswith(("http", "file", "git")) and bool(_SCP_LIKE.match(url)) \
        and not url.startswith("/")


def is_private(repo: Repo) -> bool:
    """A repository that needs credentials to be fetched."""
    return is_ssh_url(repo.url) or repo.credentials is not None


def ssh_host(url: str) -> str:
    u = urlparse(url)
    if u.scheme:
        return u.hostname or ""
    return url.split(":", 1)[0].rpartition("@")[2]


@dataclass(frozen=True)
class Token:
    url: str
    ref: SecretRef

    def resolve(self, base: Path | None) -> tuple[str, str]:
        """(user name, token): ``user:token`` as given, else the URL's user name or ``git``."""
        value = self.ref.resolve_bytes(base).decode(errors="replace").strip()
        if not value:
            raise UserError(f"credentials {self.ref}: the token is empty")
        user, sep, token = value.partition(":")
        if sep and user and token and "/" not in user:
            return user, token
        return (urlparse(self.url).username or "git"), value


@dataclass(frozen=True)
class CheckoutMaterial:
    """What the checkout phase gets: environment, read-only paths to mount, the agent socket."""

    env: dict[str, str]
    mounts: list[Path]  # read-only
    socket: Path | None  # the agent socket (read-write: it is a socket)
    directory: Path  # delete with :meth:`GitAuth.discard`


@dataclass(frozen=True)
class GitAuth:
    known_hosts: Path | None = None  # the file host keys are checked against
    agent_socket: str | None = None  # SSH_AUTH_SOCK of the caller
    credential_helper: str | None = None  # GIT_CREDENTIAL_HELPER of the caller
    tokens: tuple[Token, ...] = ()
    base: Path | None = None  # file: references relative to this directory
    ssh: bool = False  # some repository is reached over SSH
    names: tuple[str, ...] = field(default=(), compare=False)  # the private repositories

    @classmethod
    def for_repos(cls, repos: list[Repo], *, known_hosts: Path | None, agent_socket: str | None,
                  credential_helper: str | None, home: Path | None,
                  base: Path | None = None) -> "GitAuth | None":
        private = [r for r in repos if is_private(r)]
        if not private:
            return None
        kh = known_hosts
        if kh is None and home is not None and (home / ".ssh" / "known_hosts").is_file():
            kh = home / ".ssh" / "known_hosts"
        tokens = tuple(Token(r.url, r.credentials) for r in private if r.credentials is not None)
        return cls(known_hosts=kh, agent_socket=agent_socket or None,
                   credential_helper=credential_helper or None, tokens=tokens, base=base,
                   ssh=any(is_ssh_url(r.url) for r in private),
                   names=tuple(r.name for r in private))

    @classmethod
    def for_product(cls, product: Product, *, agent_socket: str | None,
                    credential_helper: str | None, home: Path | None) -> "GitAuth | None":
        repos = {id(r): r for r in product.repos.values()}
        for b in product.boards.values():
            repos.update({id(r): r for r in b.repos.values()})
        return cls.for_repos(list(repos.values()), known_hosts=product.fetch.known_hosts,
                             agent_socket=agent_socket, credential_helper=credential_helper,
                             home=home, base=product.path.parent if product.path else None)

    # -- the host's own git processes ---------------------------------------------------------
    def ssh_command(self, known_hosts: Path | str | None) -> str:
        opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT_S}"]
        if known_hosts is not None:
            opts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        return shlex.join(["ssh", *opts])

    def token_for(self, url: str | None) -> Token | None:
        return next((t for t in self.tokens if t.url == url), None)

    def host_git(self, url: str | None) -> tuple[list[str], dict[str, str]]:
        """Extra git options and environment for a host git process that talks to url."""
        args: list[str] = []
        env: dict[str, str] = {"GIT_SSH_COMMAND": self.ssh_command(self.known_hosts)}
        env["SSH_AUTH_SOCK"] = self.agent_socket or ""
        tok = self.token_for(url)
        if tok is not None:
            user, token = tok.resolve(self.base)
            args += ["-c", "credential.helper=", "-c", f"credential.helper={_TOKEN_HELPER}"]
            env.update(BUILDCTL_GIT_USERNAME=user, BUILDCTL_GIT_TOKEN=token)
        elif self.credential_helper:
            args += ["-c", f"credential.helper={self.credential_helper}"]
        return args, env

    # -- the build's checkout phase -----------------------------------------------------------
    def checkout_material(self, safe_dirs: list[str], owner: tuple[int, int]) -> CheckoutMaterial:
        """Write the checkout phase's credentials into a fresh private directory."""
        d = Path(tempfile.mkdtemp(prefix="buildctl-fetch-"))
        try:
            os.chmod(d, 0o700)
            env: dict[str, str] = {}
            kh = None
            if self.known_hosts is not None:
                kh = d / "known_hosts"
                shutil.copyfile(self.known_hosts, kh)
            gitconfig = "".join(f"[safe]\n\tdirectory = {p}\n\tdirectory = {p}/.git\n" for p in safe_dirs)
            gitconfig += f"[core]\n\tsshCommand = {self.ssh_command(kh)}\n"
            (d / "gitconfig").write_text(gitconfig)
            env["GITCONFIG_FILE"] = str(d / "gitconfig")
            if self.credential_helper:
                env["GIT_CREDENTIAL_HELPER"] = self.credential_helper
            netrc = []
            for tok in self.tokens:
                user, token = tok.resolve(self.base)
                netrc.append(f"machine {urlparse(tok.url).hostname}\nlogin {user}\npassword {token}\n")
            if netrc:
                fd = os.open(d / "netrc", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write("".join(netrc))
                env["NETRC_FILE"] = str(d / "netrc")
            socket = None
            if self.agent_socket and Path(self.agent_socket).exists():
                socket = Path(self.agent_socket)
                env["SSH_AUTH_SOCK"] = str(socket)
            if os.geteuid() == 0:
                for p in [d, *d.iterdir()]:
                    os.lchown(p, *owner)
            return CheckoutMaterial(env=env, mounts=[d], socket=socket, directory=d)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise

    @staticmethod
    def discard(material: CheckoutMaterial) -> None:
        shutil.rmtree(material.directory, ignore_errors=True)

    def describe(self) -> str:
        """What is at hand, for messages (no secret: names and paths only)."""
        parts = []
        if self.ssh:
            parts.append("SSH agent" if self.agent_socket else "no SSH agent (SSH_AUTH_SOCK unset)")
            parts.append(f"host keys from {self.known_hosts}" if self.known_hosts
                         else "no known_hosts file")
        if self.tokens:
            parts.append("HTTPS tokens " + ", ".join(str(t.ref) for t in self.tokens))
        return "; ".join(parts)


# What git and ssh say when a private repository cannot be reached, most telling first.
_TELLING = ("Host key verification failed", "host key is known", "REMOTE HOST IDENTIFICATION",
            "Permission denied", "Authentication failed", "could not read Username",
            "Repository not found", "does not appear to be a git repository", "Could not resolve",
            "Connection refused", "Connection timed out", "returned error")


def explain_failure(stderr: str, auth: "GitAuth | None", url: str | None) -> str:
    """One line: git's (or ssh's) most telling error line, and for SSH what was at hand."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    line = next((ln for key in _TELLING for ln in lines if key in ln), None)
    if line is None:
        line = next((ln for ln in lines if ln.startswith(("fatal:", "error:"))), lines[0] if lines else "")
    line = line.removeprefix("fatal: ").removeprefix("error: ")
    if is_ssh_url(url):
        if auth is None or not auth.agent_socket:
            line += " (no SSH agent: SSH_AUTH_SOCK is not set)"
        elif any("Error connecting to agent" in ln or "agent refused" in ln for ln in lines):
            line += (" (the SSH agent could not be used: ssh-agent only serves its own user, and "
                     "the checkout runs as the build's user)")
        if ("host key" in line.lower() or "Host key" in line) and auth is not None:
            line += (f" (known_hosts: {auth.known_hosts})" if auth.known_hosts
                     else " (no known_hosts file: fetch.known_hosts or ~/.ssh/known_hosts)")
    return line
