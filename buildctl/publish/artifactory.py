"""Artifactory (generic repositories): checksum deploy first, bytes only when needed; build
info; promotion only once every file is on the server with the right checksum.

Per file, under ``<repository>/<product>/<version>/<board>-<variant>/<name>``:
  1. the storage API already shows it with our sha256: nothing to do (a rerun sends nothing);
  2. else a checksum deploy (X-Checksum-Deploy: true, empty body): 201 means the server linked
     content it already had; 404 means it lacks it, so
  3. the full PUT, streamed from disk, with X-Checksum-Sha256/Sha1/Md5 (the server rejects
     bytes that do not match them) and the answer's sha256 compared with ours.
Properties (product, version, board, variant, kind, git revision, builder image and SBOM
digests, build.name/number/timestamp) travel as matrix parameters on the deploy URL.
Then every file is re-read through the storage API (sha256 and size), build info is published,
and only then is the build promoted (copy, or move) to the release repository.
"""
from __future__ import annotations

import datetime as dt
import urllib.parse

from buildctl import __version__
from buildctl.publish.http import Client, PublishError, Response, join, quote_path
from buildctl.publish.plan import Item, Plan
from buildctl.publish.report import LINKED, PRESENT, SENT, WOULD_SEND, FileResult, TargetReport
from buildctl.publish.targets import Target
from buildctl.release import bundle as B

_ESC = {c: "%5C" + urllib.parse.quote(c, safe="") for c in ",\\|="}


def matrix_value(v: str) -> str:
    """A property value as a matrix parameter: , \\ | = escaped with a backslash, then
    URL-encoded (; / and spaces included)."""
    out = "".join(_ESC.get(c, urllib.parse.quote(c, safe="")) for c in str(v))
    return out


def matrix(props: dict[str, str]) -> str:
    return "".join(f";{urllib.parse.quote(k, safe='.')}={matrix_value(v)}"
                   for k, v in sorted(props.items()))


def _error(r: Response) -> str:
    try:
        errs = r.json()["errors"]
        return "; ".join(f"{e.get('status')} {e.get('message')}" for e in errs)
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status}"


class Artifactory:
    def __init__(self, target: Target, client: Client):
        self.t = target
        self.c = client
        self.base = target.url.rstrip("/")
        self.repo = target.options["repository"]
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            token = self.t.secret("token")
            self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self._headers

    def call(self, method: str, path: str, ok=(200, 201, 204), **kw) -> Response:
        r = self.c.request(method, f"{self.base}/{path}", headers={**self.headers,
                                                                   **kw.pop("headers", {})}, **kw)
        if r.status not in ok:
            raise PublishError(f"{self.t.name}: {method} {path.split('?')[0].split(';')[0]}: "
                               f"{_error(r)}")
        return r

    def info(self, repo: str, path: str) -> dict | None:
        r = self.call("GET", f"api/storage/{repo}/{quote_path(path)}", ok=(200, 404))
        return r.json() if r.status == 200 else None


def build_ids(target: Target, plan: Plan) -> tuple[str, str, str]:
    name = target.options.get("build_name") or f"buildctl-{plan.product}"
    sde = plan.release.get("source_date_epoch") or 0
    return name, plan.version, str(int(sde) * 1000)


def started(plan: Plan) -> str:
    sde = plan.release.get("source_date_epoch") or 0
    return dt.datetime.fromtimestamp(int(sde), dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000")


def build_info(target: Target, plan: Plan) -> dict:
    name, number, _ = build_ids(target, plan)
    modules: dict[str, list] = {}
    for i in plan.items:
        d = i.digests()
        module = i.rel.split("/", 1)[0] if i.board else "release"
        modules.setdefault(module, []).append({
            "name": i.rel.rsplit("/", 1)[-1], "type": i.kind,
            "path": f"{plan.prefix}/{i.rel}", "sha1": d.sha1, "sha256": d.sha256, "md5": d.md5})
    props = {f"buildInfo.env.{k}": v for k, v in sorted(plan.properties.items())}
    vcs = [{"url": r.get("url", ""), "revision": r.get("commit", "")}
           for _, r in sorted((plan.release.get("repositories") or {}).items()) if r.get("commit")]
    return {"version": "1.0.1", "name": name, "number": number, "started": started(plan),
            "agent": {"name": "buildctl", "version": __version__},
            "buildAgent": {"name": "GENERIC", "version": __version__},
            "properties": props, "vcs": vcs,
            "modules": [{"type": "generic", "id": m, "artifacts": arts, "dependencies": []}
                        for m, arts in sorted(modules.items())]}


def publish(target: Target, plan: Plan, client: Client, *, dry_run: bool = False) -> TargetReport:
    a = Artifactory(target, client)
    rep = TargetReport(target.name, target.type, target.url)
    name, number, stamp = build_ids(target, plan)
    build_props = {"build.name": name, "build.number": number, "build.timestamp": stamp}
    release_repo = target.options.get("release_repository")
    move = target.options.get("promote", "copy") == "move"

    def deploy_url(i: Item) -> str:
        return join(a.base, a.repo, plan.remote(i)) + matrix({**plan.props_for(i), **build_props})

    if dry_run:
        for i in plan.items:
            rep.requests.append({"method": "PUT", "url": deploy_url(i), "bytes": i.size,
                                 "checksum_deploy_first": True})
            rep.files.append(FileResult(i.rel, f"{a.repo}/{plan.remote(i)}", i.size, WOULD_SEND))
        rep.requests.append({"method": "PUT", "url": f"{a.base}/api/build"})
        if release_repo:
            rep.requests.append({"method": "POST",
                                 "url": f"{a.base}/api/build/promote/{name}/{number}",
                                 "target_repository": release_repo,
                                 "mode": "move" if move else "copy"})
        rep.ok = True
        return rep

    sums = plan.items[-1]  # SHA256SUMS: present means a release was published here before
    for repo in dict.fromkeys(r for r in (a.repo, release_repo) if r and sums.rel == B.SUMS):
        have = a.info(repo, plan.remote(sums))
        if have and (have.get("checksums") or {}).get("sha256") != sums.sha256:
            raise PublishError(f"{target.name}: {repo}/{plan.remote(sums)} differs from the "
                               f"bundle's: {plan.product} {plan.version} was published with other "
                               "content; refusing to overwrite it")
    for i in plan.items:
        rep.files.append(_deploy(a, plan, i, deploy_url(i), rep))
    # every file present with the right checksum, as the server itself reports it
    for f, i in zip(rep.files, plan.items):
        got = a.info(a.repo, plan.remote(i))
        if got is None:
            raise PublishError(f"{target.name}: {f.remote}: not on the server after deploy; "
                               "not promoted")
        sha = (got.get("checksums") or {}).get("sha256")
        if sha != i.sha256 or str(got.get("size")) != str(i.size):
            raise PublishError(f"{target.name}: {f.remote}: server reports sha256 {sha} "
                               f"({got.get('size')} bytes), expected {i.sha256} ({i.size} bytes); "
                               "not promoted")
        f.verified = True
    a.call("PUT", "api/build", headers={"Content-Type": "application/json"},
           body=_json(build_info(target, plan)))
    rep.build_info = f"{name}/{number}"
    if release_repo:
        r = a.call("POST", f"api/build/promote/{quote_path(name)}/{quote_path(number)}",
                   headers={"Content-Type": "application/json"}, body=_json({
                       "status": "released", "comment": f"buildctl publish {plan.version}",
                       "ciUser": "buildctl", "timestamp": started(plan), "dryRun": False,
                       "sourceRepo": a.repo, "targetRepo": release_repo, "copy": not move,
                       "artifacts": True, "dependencies": False, "failFast": True}))
        errors = (r.json() or {}).get("errors") if r.body else None
        if errors:
            raise PublishError(f"{target.name}: promotion to {release_repo} failed: {errors}")
        rep.promoted = release_repo
    rep.ok = True
    return rep


def _json(data) -> bytes:
    import json

    return json.dumps(data, sort_keys=True).encode()


def _deploy(a: Artifactory, plan: Plan, i: Item, url: str, rep: TargetReport) -> FileResult:
    remote = plan.remote(i)
    res = FileResult(i.rel, f"{a.repo}/{remote}", i.size, PRESENT)
    have = a.info(a.repo, remote)
    if have and (have.get("checksums") or {}).get("sha256") == i.sha256:
        return res
    d = i.digests()
    sums = {"X-Checksum-Sha256": d.sha256, "X-Checksum-Sha1": d.sha1, "X-Checksum-Md5": d.md5}
    r = a.c.request("PUT", url, headers={**a.headers, **sums, "X-Checksum-Deploy": "true"})
    if r.status == 201:
        res.action = LINKED
    elif r.status == 404:
        r = a.c.request("PUT", url, headers={**a.headers, **sums,
                                             "Content-Type": "application/octet-stream"},
                        body_file=i.local)
        if r.status != 201:
            raise PublishError(f"{a.t.name}: PUT {res.remote}: {_error(r)}")
        res.action = SENT
        rep.bytes_sent += i.size
    else:
        raise PublishError(f"{a.t.name}: checksum deploy of {res.remote}: {_error(r)}")
    got = ((r.json() or {}).get("checksums") or {}).get("sha256")
    if got != d.sha256:
        raise PublishError(f"{a.t.name}: {res.remote}: server stored sha256 {got}, "
                           f"sent {d.sha256}")
    return res
