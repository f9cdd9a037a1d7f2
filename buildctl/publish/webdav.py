"""WebDAV / plain HTTP PUT: collections made with MKCOL, files PUT from disk, checked after.

A file already at its place with the right size is not sent again (HEAD). The bundle's
SHA256SUMS goes last, so its presence means the release is complete; a remote SHA256SUMS that
differs from ours means this version was published with other content, and nothing is sent.
At the end one PROPFIND per collection (Depth: 1) must list every file with its size; an
``http`` target (no PROPFIND) is checked with HEAD instead.
"""
from __future__ import annotations

import base64
import posixpath
import urllib.parse
import xml.etree.ElementTree as ET

from buildctl.publish.http import Client, PublishError, join
from buildctl.publish.plan import Plan
from buildctl.publish.report import PRESENT, SENT, WOULD_SEND, FileResult, TargetReport
from buildctl.publish.targets import Target
from buildctl.release import bundle as B

DAV = "{DAV:}"
PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?>'
                 b'<D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:resourcetype/>'
                 b'</D:prop></D:propfind>')


def _auth(target: Target) -> dict[str, str]:
    token = target.secret("token")
    if token:
        return {"Authorization": f"Bearer {token}"}
    password = target.secret("password")
    if target.options.get("username") is not None and password is not None:
        raw = f"{target.options['username']}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return {}


def collections(paths: list[str]) -> list[str]:
    """Every parent collection of the remote paths, parents first."""
    out: set[str] = set()
    for p in paths:
        d = posixpath.dirname(p)
        while d:
            out.add(d)
            d = posixpath.dirname(d)
    return sorted(out, key=lambda d: (d.count("/"), d))


def propfind_sizes(client: Client, url: str, headers: dict) -> dict[str, int]:
    """name -> size of the files directly in the collection at url."""
    r = client.request("PROPFIND", url.rstrip("/") + "/", headers={
        **headers, "Depth": "1", "Content-Type": "application/xml"}, body=PROPFIND_BODY)
    if r.status != 207:
        raise PublishError(f"PROPFIND {url}: HTTP {r.status}")
    out = {}
    for resp in ET.fromstring(r.body).iter(f"{DAV}response"):
        href = urllib.parse.unquote(resp.findtext(f"{DAV}href") or "")
        if resp.find(f".//{DAV}collection") is not None:
            continue
        size = resp.findtext(f".//{DAV}getcontentlength")
        if size is not None:
            out[posixpath.basename(href.rstrip("/"))] = int(size)
    return out


def publish(target: Target, plan: Plan, client: Client, *, dry_run: bool = False) -> TargetReport:
    rep = TargetReport(target.name, target.type, target.url)
    headers = _auth(target)
    remote = {i.rel: plan.remote(i) for i in plan.items}
    url = lambda path: join(target.url, path)  # noqa: E731
    if dry_run:
        for d in collections(list(remote.values())):
            rep.requests.append({"method": "MKCOL", "url": url(d) + "/"})
        for i in plan.items:
            rep.requests.append({"method": "PUT", "url": url(remote[i.rel]), "bytes": i.size})
            rep.files.append(FileResult(i.rel, remote[i.rel], i.size, WOULD_SEND))
        rep.ok = True
        return rep

    sums = next(i for i in plan.items if i.rel == B.SUMS)
    r = client.request("GET", url(remote[sums.rel]), headers=headers)
    if r.status == 200 and r.body != sums.local.read_bytes():
        raise PublishError(f"{target.name}: {url(remote[sums.rel])} already holds a different "
                           f"SHA256SUMS: {plan.product} {plan.version} was published with other "
                           "content; refusing to overwrite it")
    if target.type == "webdav":
        base = urllib.parse.urlsplit(target.url).path.strip("/")
        for d in ([""] if base else []) + collections(list(remote.values())):
            r = client.request("MKCOL", (url(d) if d else target.url.rstrip("/")) + "/",
                               headers=headers)
            if r.status not in (201, 405):  # 405: it exists
                raise PublishError(f"MKCOL {url(d)}/: HTTP {r.status}")
    for i in plan.items:
        u = url(remote[i.rel])
        h = client.request("HEAD", u, headers=headers)
        if h.status == 200 and h.header("content-length") == str(i.size):
            rep.files.append(FileResult(i.rel, remote[i.rel], i.size, PRESENT))
            continue
        r = client.request("PUT", u, body_file=i.local,
                           headers={**headers, "Content-Type": "application/octet-stream"})
        if r.status not in (200, 201, 204):
            raise PublishError(f"PUT {u}: HTTP {r.status}")
        rep.bytes_sent += i.size
        rep.files.append(FileResult(i.rel, remote[i.rel], i.size, SENT))
    _verify(target, plan, client, headers, rep)
    rep.ok = True
    return rep


def _verify(target: Target, plan: Plan, client: Client, headers: dict, rep: TargetReport) -> None:
    by_dir: dict[str, dict[str, int]] = {}
    for f in rep.files:
        d, name = posixpath.split(f.remote)
        if target.type == "webdav":
            if d not in by_dir:
                by_dir[d] = propfind_sizes(client, join(target.url, d), headers)
            got = by_dir[d].get(name)
        else:
            h = client.request("HEAD", join(target.url, f.remote), headers=headers)
            got = int(h.header("content-length") or -1) if h.status == 200 else None
        if got != f.size:
            raise PublishError(f"{target.name}: {f.remote}: server has "
                               f"{'nothing' if got is None else f'{got} bytes'}, sent {f.size}")
        f.verified = True
