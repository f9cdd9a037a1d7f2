"""An Artifactory test server following JFrog's REST documentation, as strict as the real one.

  python -m tests.publish.servers.artifactory STORE_DIR TOKEN REPO [REPO ...]

Implements what buildctl uses, with the documented status codes and error body
(``{"errors": [{"status": N, "message": "..."}]}``):
  PUT  /artifactory/<repo>/<path>[;k=v;k2=v1,v2]  deploy; X-Checksum-Sha256/-Sha1/-Md5 must match
       the received bytes (else 409); with X-Checksum-Deploy: true and an empty body, 201 when
       the content is in the store, 404 when it is not; 201 answers are ItemCreated JSON
  GET  /artifactory/api/storage/<repo>/<path>[?properties]   file info / properties
  PUT  /artifactory/api/build                     build info (204)
  GET  /artifactory/api/build/<name>/<number>
  POST /artifactory/api/build/promote/<name>/<number>   copy/move the build's artifacts
  POST /artifactory/api/search/aql                items.find({...}) with $eq/$match/$and/$or
  GET  /artifactory/<repo>/<path>                 download
Bearer token auth (401 "Bad credentials" otherwise); unknown repository: 404. Contents live on
disk under STORE_DIR, one blob per sha1, so large uploads do not sit in memory. Faults: see
faults.py; the "lie" action makes the storage API report a wrong sha256 for matching paths.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from tests.publish.servers.faults import FaultHandler, FaultServer, serve_forever

PREFIX = "/artifactory"
CREATED = "application/vnd.org.jfrog.artifactory.storage.ItemCreated+json"
FILEINFO = "application/vnd.org.jfrog.artifactory.storage.FileInfo+json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())


class Store:
    def __init__(self, root: Path, repos: list[str]):
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, dict[str, dict]] = {r: {} for r in repos}
        self.builds: dict[tuple[str, str], dict] = {}
        self.lock = threading.Lock()

    def blob(self, sha1: str) -> Path:
        return self.root / "blobs" / sha1

    def by_checksum(self, sha1=None, sha256=None, md5=None) -> dict | None:
        for items in self.repos.values():
            for it in items.values():
                if ((sha1 and it["sha1"] == sha1) or (sha256 and it["sha256"] == sha256)
                        or (md5 and it["md5"] == md5)):
                    return it
        return None


def split_matrix(path: str) -> tuple[str, dict[str, list[str]]]:
    """'a/b;k=v/c;x=1,2' -> ('a/b/c', {k: [v], x: [1, 2]}), decoded after splitting."""
    props: dict[str, list[str]] = {}
    segs = []
    for seg in path.split("/"):
        name, *params = seg.split(";")
        segs.append(urllib.parse.unquote(name))
        for p in params:
            if not p:
                continue
            k, _, v = p.partition("=")
            props.setdefault(urllib.parse.unquote(k), []).extend(
                urllib.parse.unquote(x) for x in v.split(","))
    return "/".join(s for s in segs if s != ""), props


def err(status: int, message: str) -> dict:
    return {"errors": [{"status": status, "message": message}]}


class Handler(FaultHandler):
    store: Store
    token: str

    def serve(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.read_body()
            return self.reply_json(401, err(401, "Bad credentials"))
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(PREFIX + "/"):
            return self.reply_json(404, err(404, "Not Found"))
        rest = url.path[len(PREFIX) + 1:]
        query = url.query
        if rest.startswith("api/"):
            return self.api(rest[4:], query)
        repo, _, path = rest.partition("/")
        if repo not in self.store.repos:
            self.read_body()
            return self.reply_json(404, err(404, f"Repository '{repo}' not found"))
        if self.command == "PUT":
            return self.deploy(repo, path)
        if self.command in ("GET", "HEAD"):
            path, _ = split_matrix(path)
            it = self.store.repos[repo].get(path)
            if it is None:
                return self.reply_json(404, err(404, "File not found."))
            data = self.store.blob(it["sha1"]).read_bytes() if self.command == "GET" else b""
            self.send_response(200)
            self.send_header("Content-Length", str(it["size"]))
            self.send_header("X-Checksum-Sha1", it["sha1"])
            self.send_header("X-Checksum-Sha256", it["sha256"])
            self.end_headers()
            self.wfile.write(data)
            self._status = 200
            return None
        return self.reply_json(405, err(405, "Method Not Allowed"))

    # -- deploy
    def deploy(self, repo: str, raw_path: str) -> None:
        path, props = split_matrix(raw_path)
        h = {k: (self.headers.get(f"X-Checksum-{k}") or "").lower()
             for k in ("Sha1", "Sha256", "Md5")}
        generic = (self.headers.get("X-Checksum") or "").lower()
        if generic:
            h[{32: "Md5", 40: "Sha1", 64: "Sha256"}.get(len(generic), "Sha1")] = generic
        st = self.store
        if (self.headers.get("X-Checksum-Deploy") or "").lower() == "true":
            self.read_body()
            if not (h["Sha1"] or h["Sha256"]):
                return self.reply_json(400, err(400, "Missing checksum header for checksum deploy"))
            with st.lock:
                src = st.by_checksum(h["Sha1"] or None, h["Sha256"] or None)
            if src is None:
                return self.reply_json(404, err(404, "Checksum deploy failed: no content found "
                                                "with the given checksum"))
            return self.put_item(repo, path, dict(src), props, h)
        # a real upload, streamed to a temporary file while hashing
        n = self.body_length()
        s1, s256, m5 = hashlib.sha1(), hashlib.sha256(), hashlib.md5()
        fd, tmp = tempfile.mkstemp(dir=st.root)
        got = 0
        with os.fdopen(fd, "wb") as out:
            while got < n:
                chunk = self.rfile.read(min(1 << 20, n - got))
                if not chunk:
                    break
                out.write(chunk)
                s1.update(chunk)
                s256.update(chunk)
                m5.update(chunk)
                got += len(chunk)
        self._received = got
        if got != n:
            os.unlink(tmp)
            self.close_connection = True
            return None
        actual = {"Sha1": s1.hexdigest(), "Sha256": s256.hexdigest(), "Md5": m5.hexdigest()}
        for k in ("Sha1", "Sha256", "Md5"):
            if h[k] and h[k] != actual[k]:
                os.unlink(tmp)
                return self.reply_json(409, err(409, f"Checksum error for '{repo}/{path}': "
                                                f"received '{h[k]}' but actually '{actual[k]}'"))
        os.replace(tmp, st.blob(actual["Sha1"]))
        info = {"sha1": actual["Sha1"], "sha256": actual["Sha256"], "md5": actual["Md5"],
                "size": got}
        return self.put_item(repo, path, info, props, h)

    def put_item(self, repo, path, info, props, sent) -> None:
        st = self.store
        item = {"sha1": info["sha1"], "sha256": info["sha256"], "md5": info["md5"],
                "size": info["size"], "created": _now(), "props": props,
                "original": {k.lower(): v for k, v in sent.items() if v}}
        with st.lock:
            st.repos[repo][path] = item
        host = f"http://{self.headers.get('Host')}{PREFIX}"
        self.reply_json(201, {
            "repo": repo, "path": "/" + path, "created": item["created"], "createdBy": "buildctl",
            "downloadUri": f"{host}/{repo}/{path}", "mimeType": "application/octet-stream",
            "size": str(item["size"]),
            "checksums": {"sha1": item["sha1"], "md5": item["md5"], "sha256": item["sha256"]},
            "originalChecksums": item["original"], "uri": f"{host}/api/storage/{repo}/{path}"},
            ctype=CREATED)

    # -- REST API
    def api(self, rest: str, query: str) -> None:
        body = self.read_body() if self.command in ("PUT", "POST", "PATCH") else b""
        if rest.startswith("storage/") and self.command == "GET":
            return self.storage(rest[len("storage/"):], query)
        if rest == "build" and self.command == "PUT":
            try:
                bi = json.loads(body)
                key = (bi["name"], str(bi["number"]))
                bi["started"]
            except (ValueError, KeyError, TypeError):
                return self.reply_json(400, err(400, "Invalid build info"))
            with self.store.lock:
                self.store.builds[key] = bi
            return self.reply(204)
        m = re.fullmatch(r"build/promote/([^/]+)/([^/]+)", rest)
        if m and self.command == "POST":
            return self.promote(urllib.parse.unquote(m[1]), urllib.parse.unquote(m[2]), body)
        m = re.fullmatch(r"build/([^/]+)/([^/]+)", rest)
        if m and self.command == "GET":
            bi = self.store.builds.get((urllib.parse.unquote(m[1]), urllib.parse.unquote(m[2])))
            if bi is None:
                return self.reply_json(404, err(404, "No build was found"))
            return self.reply_json(200, {"uri": self.path, "buildInfo": bi})
        if rest == "search/aql" and self.command == "POST":
            return self.aql(body.decode())
        return self.reply_json(404, err(404, "Not Found"))

    def storage(self, rest: str, query: str) -> None:
        repo, _, path = rest.partition("/")
        it = self.store.repos.get(repo, {}).get(path)
        if it is None:
            return self.reply_json(404, err(404, "Unable to find item"))
        if query.split("=", 1)[0] == "properties":
            return self.reply_json(200, {"properties": it["props"], "uri": self.path})
        sha256 = it["sha256"]
        if self.server.take("GET", self.path, actions=("lie",)):
            sha256 = hashlib.sha256(sha256.encode()).hexdigest()
        host = f"http://{self.headers.get('Host')}{PREFIX}"
        self.reply_json(200, {
            "repo": repo, "path": "/" + path, "created": it["created"],
            "downloadUri": f"{host}/{repo}/{path}", "size": str(it["size"]),
            "checksums": {"sha1": it["sha1"], "md5": it["md5"], "sha256": sha256},
            "originalChecksums": it["original"], "uri": f"{host}/api/storage/{repo}/{path}"},
            ctype=FILEINFO)

    def promote(self, name: str, number: str, body: bytes) -> None:
        st = self.store
        try:
            req = json.loads(body)
        except ValueError:
            return self.reply_json(400, err(400, "Invalid promotion request"))
        if (name, number) not in st.builds:
            return self.reply_json(404, err(404, f"Cannot find build '{name}' number '{number}'"))
        src, dst = req.get("sourceRepo"), req.get("targetRepo")
        if dst not in st.repos or (src and src not in st.repos):
            return self.reply_json(400, err(400, "Unknown repository"))
        moved = []
        with st.lock:
            for repo in ([src] if src else list(st.repos)):
                for path, it in list(st.repos[repo].items()):
                    p = it["props"]
                    if p.get("build.name") != [name] or p.get("build.number") != [number]:
                        continue
                    new = json.loads(json.dumps(it))
                    for k, v in (req.get("properties") or {}).items():
                        new["props"][k] = list(v)
                    st.repos[dst][path] = new
                    if not req.get("copy", False) and not req.get("dryRun"):
                        del st.repos[repo][path]
                    moved.append(path)
            if not req.get("dryRun"):
                st.builds[(name, number)].setdefault("statuses", []).append(
                    {"status": req.get("status"), "repository": dst, "timestamp": _now()})
        self.reply_json(200, {"messages": []})

    # -- AQL (the subset buildctl uses)
    def aql(self, text: str) -> None:
        m = re.match(r"\s*items\.find\((.*?)\)(\.include\((.*)\))?\s*$", text, re.S)
        if not m:
            return self.reply_json(400, err(400, "Failed to parse query"))
        try:
            crit = json.loads(m[1])
        except ValueError:
            return self.reply_json(400, err(400, "Failed to parse query"))
        include = re.findall(r'"([^"]+)"', m[3] or "")
        results = []
        with self.store.lock:
            for repo, items in sorted(self.store.repos.items()):
                for path, it in sorted(items.items()):
                    d, _, n = path.rpartition("/")
                    row = {"repo": repo, "path": d or ".", "name": n, "type": "file",
                           "size": it["size"], "created": it["created"],
                           "sha256": it["sha256"], "actual_sha1": it["sha1"]}
                    if _match(crit, row, it["props"]):
                        if "property" in include or "property.*" in include:
                            row["properties"] = [
                                {"key": k, "value": v}
                                for k, vs in sorted(it["props"].items()) for v in vs]
                        results.append(row)
        self.reply_json(200, {"results": results, "range": {"start_pos": 0, "end_pos": len(results),
                                                             "total": len(results)}})


def _cmp(op: str, want, got_values: list) -> bool:
    if op == "$eq":
        return any(str(g) == str(want) for g in got_values)
    if op == "$ne":
        return all(str(g) != str(want) for g in got_values)
    if op == "$match":
        return any(fnmatch.fnmatchcase(str(g), str(want)) for g in got_values)
    if op == "$nmatch":
        return not any(fnmatch.fnmatchcase(str(g), str(want)) for g in got_values)
    raise ValueError(op)


def _match(crit, row: dict, props: dict) -> bool:
    if isinstance(crit, list):
        return all(_match(c, row, props) for c in crit)
    for key, want in crit.items():
        if key == "$and":
            if not all(_match(c, row, props) for c in want):
                return False
            continue
        if key == "$or":
            if not any(_match(c, row, props) for c in want):
                return False
            continue
        values = props.get(key[1:], []) if key.startswith("@") else [row.get(key)]
        if isinstance(want, dict):
            if not all(_cmp(op, v, values) for op, v in want.items()):
                return False
        elif not _cmp("$eq", want, values):
            return False
    return True


def main() -> None:
    root, token, *repos = sys.argv[1:]
    Handler.store = Store(Path(root), repos)
    Handler.token = token
    serve_forever(FaultServer(("127.0.0.1", 0), Handler))


if __name__ == "__main__":
    main()
