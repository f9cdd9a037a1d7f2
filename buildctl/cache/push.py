"""Push sstate objects to a WebDAV / plain HTTP mirror: only the ones it lacks, in parallel.

The mirror holds the same tree as SSTATE_DIR (``xx/yy/sstate:...``, ``universal/...``), so
builds read it with ``SSTATE_MIRRORS = "file://.* <URL>/PATH;downloadfilename=PATH"``. What
the mirror has comes from one WebDAV PROPFIND (Depth: infinity) when the server answers it,
else from a HEAD per object; an object with the same size is present. Missing ones are PUT,
their collections made with MKCOL when the server wants them (409). Every worker keeps one
connection open. The local tree is walked (one scandir per directory) while the server
builds its listing.
"""
from __future__ import annotations

import base64
import http.client
import io
import xml.etree.ElementTree as ET
import os
import posixpath
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError

# what BitBake writes into SSTATE_DIR that is not an object to share
_SKIP_SUFFIXES = (".lock", ".tmp", ".db", ".db-wal", ".db-shm")


@dataclass
class PushResult:
    objects: int = 0
    present: int = 0
    sent: int = 0
    sent_bytes: int = 0
    failed: list[str] = field(default_factory=list)  # "path: reason"
    hashserv: str | None = None  # the mirror's marker: recorded / matches / forced / None

    def to_dict(self) -> dict:
        return {"objects": self.objects, "present": self.present, "sent": self.sent,
                "sent_bytes": self.sent_bytes, "failed": self.failed, "hashserv": self.hashserv}


def _walk(top: str, prefix: str, out: list[tuple[str, str, int]]) -> None:
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return  # removed while walking (an sstate clean-up)
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir(follow_symlinks=False):
            _walk(e.path, f"{prefix}{e.name}/", out)
        elif e.name.startswith("sstate:") and not e.name.endswith(_SKIP_SUFFIXES):
            try:
                size = e.stat().st_size
            except OSError:
                continue  # removed while walking: nothing to push
            out.append((prefix + e.name, e.path, size))


def sstate_objects(root: Path) -> list[tuple[str, Path, int]]:
    """(relative posix path, file, size) of every shareable object under SSTATE_DIR, sorted.
    One scandir per directory and one stat per object, no path objects on the way."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory (the sstate cache to push)")
    out: list[tuple[str, str, int]] = []
    _walk(str(root), "", out)
    return out  # type: ignore[return-value]  # str paths: open() takes them as Path does


def _file_size(response: ET.Element, prefix: str, out: dict[str, int]) -> None:
    href = response.findtext("{DAV:}href") or ""
    for propstat in response.iterfind("{DAV:}propstat"):
        length = propstat.findtext("{DAV:}prop/{DAV:}getcontentlength")
        if length and " 200 " in (propstat.findtext("{DAV:}status") or " 200 "):
            path = urllib.parse.unquote(urllib.parse.urlsplit(href).path) if "%" in href or \
                "://" in href else href
            if path.startswith(prefix):
                out[path[len(prefix):]] = int(length)
            return


class _Conn(threading.local):
    conn: http.client.HTTPConnection | None = None


class Mirror:
    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 60):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise UserError(f"{url}: not an http(s) URL")
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.base = u.path.rstrip("/")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self._local = _Conn()
        self._made: set[str] = set()
        self._made_lock = threading.Lock()
        self._col_locks: dict[str, threading.Lock] = {}

    def _connection(self) -> http.client.HTTPConnection:
        if self._local.conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return self._local.conn

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
        """One request on this thread's connection (reopened once if the server closed it)."""
        url = urllib.parse.quote(path if path.startswith("/") else f"{self.base}/{path}",
                                 safe="/:")
        status, resp_headers, _ = self._exchange(method, url, body, headers)
        return status, resp_headers

    def _exchange(self, method: str, url: str, body=None, headers=None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one request, sent again once on a fresh connection when
        the server had closed this thread's."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                if hasattr(body, "seek"):
                    body.seek(0)
                conn.request(method, url, body=body, headers={**self.headers, **(headers or {})})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def listing(self) -> dict[str, int] | None:
        """Every file under the base URL with its size, from one PROPFIND Depth: infinity;
        None when the server does not answer it (plain HTTP, or infinite depth refused).
        Only getcontentlength is asked for (collections have none: a response whose 200
        propstat carries a length is a file), and the reply is parsed as it arrives."""
        body = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
                b'<D:getcontentlength/></D:prop></D:propfind>')
        conn = self._connection()
        out: dict[str, int] = {}
        prefix = self.base + "/"
        parser = ET.XMLPullParser(events=("end",))
        try:
            conn.request("PROPFIND", urllib.parse.quote(self.base + "/", safe="/:"), body=body,
                         headers={**self.headers, "Depth": "infinity",
                                  "Content-Type": "application/xml"})
            resp = conn.getresponse()
            if resp.status != 207:
                resp.read()
                return {} if resp.status == 404 else None
            while chunk := resp.read(1 << 16):
                parser.feed(chunk)
                for _, el in parser.read_events():
                    if el.tag == "{DAV:}response":
                        _file_size(el, prefix, out)
                        el.clear()
            parser.close()
            for _, el in parser.read_events():
                if el.tag == "{DAV:}response":
                    _file_size(el, prefix, out)
        except (http.client.HTTPException, OSError):
            conn.close()
            self._local.conn = None
            return None
        except (ET.ParseError, ValueError):
            return None
        return out

    def close(self) -> None:
        """Close this thread's connection."""
        if self._local.conn is not None:
            self._local.conn.close()
            self._local.conn = None

    def fetch(self, path: str) -> tuple[int, bytes]:
        """GET one small object: (status, body)."""
        status, _, data = self._exchange("GET", urllib.parse.quote(f"{self.base}/{path}", safe="/:"))
        return status, data

    def put_bytes(self, path: str, data: bytes) -> None:
        hdrs = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
        body = io.BytesIO(data)
        status, _ = self.request("PUT", path, body=body, headers=hdrs)
        if status == 409:
            self.mkcols(path)
            status, _ = self.request("PUT", path, body=body, headers=hdrs)
        if status not in (200, 201, 204):
            raise UserError(f"PUT {path}: HTTP {status}")

    def size(self, path: str) -> int | None:
        status, headers = self.request("HEAD", path)
        if status == 404:
            return None
        if status >= 400:
            raise UserError(f"HEAD {path}: HTTP {status}")
        return int(headers["content-length"]) if "content-length" in headers else -1

    def mkcols(self, path: str) -> None:
        """Every collection above ``path``, the base URL's own included (outermost first)."""
        parts = [p for p in posixpath.dirname(f"{self.base}/{path}").split("/") if p]
        for i in range(1, len(parts) + 1):
            col = "/" + "/".join(parts[:i]) + "/"
            with self._made_lock:  # one MKCOL per collection, whichever worker needs it first
                lock = self._col_locks.setdefault(col, threading.Lock())
            with lock:
                if col in self._made:
                    continue
                status, _ = self.request("MKCOL", col)
                if status not in (201, 405, 301):  # 405: exists already
                    raise UserError(f"MKCOL {col}: HTTP {status}")
                self._made.add(col)

    def put(self, path: str, file: Path, size: int) -> None:
        with open(file, "rb") as fh:
            hdrs = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
            status, _ = self.request("PUT", path, body=fh, headers=hdrs)
            if status == 409:  # the collection is missing (WebDAV)
                self.mkcols(path)
                status, _ = self.request("PUT", path, body=fh, headers=hdrs)
        if status not in (200, 201, 204):
            raise UserError(f"PUT {path}: HTTP {status}")


def _listing_once(mirror: Mirror) -> dict[str, int] | None:
    try:
        return mirror.listing()
    finally:
        mirror.close()  # the helper thread's connection: the workers keep their own


def push(root: Path, url: str, *, jobs: int = 8, dry_run: bool = False,
         auth: tuple[str, str] | None = None, hashserv=None, force: bool = False) -> PushResult:
    """hashserv (a marker.HashServIdentity): refuse a mirror filled under another hash server
    (unless force), and record this one on a mirror without a marker."""
    from buildctl.cache.marker import check_mirror

    mirror = Mirror(url, auth)
    marker = check_mirror(mirror, hashserv, force=force, dry_run=dry_run) if hashserv else None
    # the server builds its listing while we walk the local tree
    with ThreadPoolExecutor(max_workers=1) as one_more:
        asked = one_more.submit(_listing_once, mirror)
        try:
            objects = sstate_objects(root)
        finally:
            listed = asked.result()
    result = PushResult(objects=len(objects), hashserv=marker)
    lock = threading.Lock()
    if listed is not None:  # known without a request: only the missing ones go to the workers
        todo = [o for o in objects if listed.get(o[0]) != o[2]]
        result.present = len(objects) - len(todo)
        objects = todo

    def one(item: tuple[str, Path, int]) -> None:
        rel, path, size = item
        try:
            have = None if listed is not None else mirror.size(rel)
            if have == size:
                with lock:
                    result.present += 1
                return
            if not dry_run:
                mirror.put(rel, path, size)
            with lock:
                result.sent += 1
                result.sent_bytes += size
        except (UserError, OSError, http.client.HTTPException) as exc:
            with lock:
                result.failed.append(f"{rel}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, objects))
    result.failed.sort()
    return result
