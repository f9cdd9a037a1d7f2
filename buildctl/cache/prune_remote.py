"""Age out sstate objects on a WebDAV mirror (`buildctl cache prune URL --older-than DAYS`).

A mirror cannot see builds read it, so age is the time the object was stored: one PROPFIND
(Depth: infinity) lists every file with getlastmodified and getcontentlength; an object (the
archive with its ``.siginfo`` and ``.sig``) is deleted as a unit when its newest file is older
than the window, with one DELETE per file over kept-alive connections in parallel. Files that
are not sstate objects (buildctl's own ``.buildctl/`` marker among them) are never touched.
"""
from __future__ import annotations

import email.utils
import http.client
import time
import urllib.parse
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from buildctl.cache.prune import PruneResult
from buildctl.cache.push import Mirror
from buildctl.errors import UserError

_COMPANIONS = (".siginfo", ".sig")
_PROPFIND = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
             b'<D:getlastmodified/><D:getcontentlength/></D:prop></D:propfind>')


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the mirror's base URL
    size: int
    modified: float  # epoch seconds


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def listing(mirror: Mirror) -> list[RemoteFile]:
    """Every file under the mirror's base URL with its size and time (one PROPFIND)."""
    conn = mirror._connection()
    prefix = mirror.base + "/"
    out: list[RemoteFile] = []
    parser = ET.XMLPullParser(events=("end",))

    def take(el: ET.Element) -> None:
        href = el.findtext("{DAV:}href") or ""
        path = urllib.parse.unquote(urllib.parse.urlsplit(href).path)
        for ps in el.iterfind("{DAV:}propstat"):
            if " 200 " not in (ps.findtext("{DAV:}status") or " 200 "):
                continue
            length = ps.findtext("{DAV:}prop/{DAV:}getcontentlength")
            stamp = ps.findtext("{DAV:}prop/{DAV:}getlastmodified")
            if length and stamp and path.startswith(prefix):
                out.append(RemoteFile(path[len(prefix):], int(length),
                                      email.utils.parsedate_to_datetime(stamp).timestamp()))
            return

    try:
        conn.request("PROPFIND", urllib.parse.quote(prefix, safe="/:"), body=_PROPFIND,
                     headers={**mirror.headers, "Depth": "infinity",
                              "Content-Type": "application/xml"})
        resp = conn.getresponse()
        if resp.status == 404:
            resp.read()
            return []
        if resp.status != 207:
            resp.read()
            raise UserError(f"{mirror.url}: PROPFIND answered HTTP {resp.status} (a WebDAV "
                            "server that lists with Depth: infinity is needed to prune)")
        while chunk := resp.read(1 << 16):
            parser.feed(chunk)
            for _, el in parser.read_events():
                if el.tag == "{DAV:}response":
                    take(el)
                    el.clear()
        parser.close()
        for _, el in parser.read_events():
            if el.tag == "{DAV:}response":
                take(el)
    except (http.client.HTTPException, OSError) as exc:
        raise UserError(f"{mirror.url}: {exc}") from None
    except (ET.ParseError, ValueError, TypeError):
        raise UserError(f"{mirror.url}: PROPFIND reply is not a WebDAV multistatus") from None
    return out


def _key(path: str) -> str | None:
    """The archive a file belongs to; None for files that are not sstate objects."""
    name = path.rsplit("/", 1)[-1]
    if path.startswith(".") or "/." in path or not name.startswith("sstate:") or \
            name.endswith((".lock", ".tmp")):
        return None
    for suffix in _COMPANIONS:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def prune_remote(url: str, older_than_days: float, *, dry_run: bool = False, jobs: int = 8,
                 auth: tuple[str, str] | None = None, now: float | None = None) -> PruneResult:
    if older_than_days < 0:
        raise UserError("--older-than: must not be negative")
    mirror = Mirror(url, auth)
    cutoff = (time.time() if now is None else now) - older_than_days * 86400
    groups: dict[str, list[RemoteFile]] = {}
    for f in listing(mirror):
        key = _key(f.path)
        if key is not None:
            groups.setdefault(key, []).append(f)
    result = PruneResult(objects=len(groups))
    doomed = [files for _, files in sorted(groups.items())
              if max(f.modified for f in files) < cutoff]
    result.kept = len(groups) - len(doomed)
    if dry_run:
        result.removed = len(doomed)
        result.removed_bytes = sum(f.size for files in doomed for f in files)
        return result

    def delete(files: list[RemoteFile]) -> str | None:
        for f in sorted(files, key=lambda f: f.path != _key(f.path)):  # the archive first
            try:
                status, _ = mirror.request("DELETE", f.path)
            except (http.client.HTTPException, OSError) as exc:
                return f"{f.path}: {exc}"
            if status not in (200, 204, 404):
                return f"{f.path}: DELETE answered HTTP {status}"
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for files, failure in zip(doomed, pool.map(delete, doomed)):
            if failure:
                result.failed.append(failure)
            else:
                result.removed += 1
                result.removed_bytes += sum(f.size for f in files)
    result.failed.sort()
    return result


def dir_or_url(text: str):
    """argparse type of `cache prune`'s first argument: a mirror URL stays a string."""
    from buildctl.commands._common import path_arg

    return text if is_url(text) else path_arg(text)
