"""A Mender test server: the management and device API routes buildctl and mender-client 3.4
use, written from the published OpenAPI documents (deployments, deviceauth, inventory, useradm).

  python -m tests.rollout.server.mender --user U --password P [--token PAT] [--auto-accept]

Prints its port on the first line and serves http://127.0.0.1:PORT until terminated. Strict
where the real server is: JSON bodies need application/json, uploads need multipart/form-data
with an `artifact` part (parts after it ignored), artifacts are parsed and refused when broken,
the same name for an overlapping device type is 409, unaccepted devices get 401, deployments to
an empty group are 400 and to an unknown artifact 422. Test hooks (not Mender API):
POST /__faults [{"path": prefix, "method": "GET", "status": 503, "count": 3,
"retry_after": 1, "delay": 0.5, "reset": false, "after": false}]
("after": the change is made, then the status is answered; "reset": no answer at all), GET /__log, GET /__state, POST /__expire_tokens (every login JWT expires).
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from buildctl.ota.mender import read_artifact

MG = "/api/management"
DV = "/api/devices"
TERMINAL = {"success", "failure", "noartifact", "already-installed", "aborted", "decommissioned"}
STATUSES = {"installing", "pause_before_installing", "downloading", "pause_before_rebooting",
            "rebooting", "pause_before_committing", "success", "failure", "already-installed"}
STAT_KEYS = ("success", "pending", "downloading", "installing", "rebooting", "failure",
             "noartifact", "already-installed", "aborted", "pause_before_installing",
             "pause_before_rebooting", "pause_before_committing")


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.args = args
        self.user_tokens: set[str] = set()
        self.device_tokens: dict[str, str] = {}  # token -> device id
        self.artifacts: dict[str, dict] = {}  # id -> ArtifactV2 + "_path"
        self.devices: dict[str, dict] = {}  # id -> {identity, pubkey, status, group, attributes}
        self.deployments: dict[str, dict] = {}
        self.faults: list[dict] = []
        self.log: list[dict] = []
        self.store = Path(tempfile.mkdtemp(prefix="mender-test-server-"))


class Reply(Exception):
    def __init__(self, status: int, body=None, headers: dict | None = None, ctype="application/json"):
        self.status, self.body, self.headers, self.ctype = status, body, headers or {}, ctype


def err(status: int, text: str) -> Reply:
    return Reply(status, {"error": text, "request_id": str(uuid.uuid4())})


def verify_signature(pem: str, body: bytes, sig_b64: str) -> bool:
    try:
        key = serialization.load_pem_public_key(pem.encode())
        sig = base64.b64decode(sig_b64, validate=True)
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, body, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, body, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, body)
        else:
            return False
        return True
    except (ValueError, InvalidSignature, TypeError):
        return False


def norm_pem(pem: str) -> str:
    return serialization.load_pem_public_key(pem.encode()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    S: State

    def log_message(self, *a):  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _json(self, body: bytes):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise err(400, "Content-Type must be application/json")
        try:
            return json.loads(body)
        except ValueError:
            raise err(400, "failed to decode request body: invalid JSON") from None

    def _send(self, r: Reply) -> None:
        if r.body is None:
            data = b""
        elif isinstance(r.body, bytes):
            data = r.body
        else:
            data = json.dumps(r.body).encode()
        self.send_response(r.status)
        if data:
            self.send_header("Content-Type", r.ctype)
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _fault(self, path: str):
        with self.S.lock:
            for f in self.S.faults:
                if f.get("count", 1) <= 0:
                    continue
                if not path.startswith(f.get("path", "/")):
                    continue
                if f.get("method") and f["method"] != self.command:
                    continue
                f["count"] = f.get("count", 1) - 1
                return dict(f)
        return None

    def _handle(self) -> None:
        u = urllib.parse.urlsplit(self.path)
        path, query = u.path, urllib.parse.parse_qs(u.query)
        body = self._body()
        entry = {"method": self.command, "path": path, "t": time.time()}
        try:
            if path.startswith("/__"):
                raise self._hooks(path, body)
            f = self._fault(path)
            if f:
                if f.get("delay"):
                    time.sleep(f["delay"])
                if f.get("reset"):  # drop the connection, no response at all
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if f.get("status") and not f.get("after"):
                    h = {"Retry-After": str(f["retry_after"])} if f.get("retry_after") is not None else {}
                    raise Reply(f["status"], {"error": "injected fault"}, h)
            with self.S.lock:
                done = self._route(path, query, body)
            if f and f.get("after"):  # the request took effect, but the answer is an error
                raise Reply(f["status"], {"error": "injected fault after the change"})
            raise done
        except Reply as r:
            entry["status"] = r.status
            if not path.startswith("/__"):
                with self.S.lock:
                    self.S.log.append(entry)
            self._send(r)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _hooks(self, path: str, body: bytes) -> Reply:
        if path == "/__faults" and self.command == "POST":
            with self.S.lock:
                self.S.faults = json.loads(body or b"[]")
            return Reply(204)
        if path == "/__expire_tokens" and self.command == "POST":
            with self.S.lock:
                self.S.user_tokens.clear()
            return Reply(204)
        if path == "/__log":
            with self.S.lock:
                return Reply(200, list(self.S.log))
        if path == "/__state":
            with self.S.lock:
                return Reply(200, {"devices": self.S.devices,
                                   "deployments": self.S.deployments,
                                   "artifacts": [{k: v for k, v in a.items() if k != "_path"}
                                                 for a in self.S.artifacts.values()]})
        if path.startswith("/__download/"):
            aid = path.rsplit("/", 1)[-1]
            with self.S.lock:
                a = self.S.artifacts.get(aid)
            if a is None:
                return err(404, "no such artifact")
            return Reply(200, Path(a["_path"]).read_bytes(), ctype="application/vnd.mender-artifact")
        return err(404, "no such hook")

    # -- auth -------------------------------------------------------------------------------
    def _user(self) -> None:
        h = self.headers.get("Authorization") or ""
        tok = h[7:] if h.startswith("Bearer ") else ""
        if not tok or (tok not in self.S.user_tokens and tok != self.S.args.token):
            raise err(401, "Unauthorized")

    def _device(self) -> dict:
        h = self.headers.get("Authorization") or ""
        tok = h[7:] if h.startswith("Bearer ") else ""
        dev = self.S.devices.get(self.S.device_tokens.get(tok, ""))
        if dev is None or dev["status"] != "accepted":
            raise err(401, "Unauthorized")
        return dev

    # -- routes -----------------------------------------------------------------------------
    def _route(self, path: str, q: dict, body: bytes) -> Reply:
        m, S = self.command, self.S
        if path == MG + "/v1/useradm/auth/login" and m == "POST":
            h = self.headers.get("Authorization") or ""
            try:
                user, _, pw = base64.b64decode(h[6:]).decode().partition(":") if h.startswith("Basic ") else ("", "", "")
            except ValueError:
                user, pw = "", ""
            if not (secrets.compare_digest(user, S.args.user) and secrets.compare_digest(pw, S.args.password)):
                return err(401, "unauthorized")
            tok = "jwt." + secrets.token_urlsafe(24)
            S.user_tokens.add(tok)
            return Reply(200, tok.encode(), ctype="application/jwt")
        if path.startswith(MG):
            self._user()
            return self._management(path, q, body)
        if path == DV + "/v1/authentication/auth_requests" and m == "POST":
            return self._auth_request(body)
        if path.startswith(DV):
            dev = self._device()
            return self._device_api(dev, path, q, body)
        return err(404, "not found")

    def _auth_request(self, body: bytes) -> Reply:
        S = self.S
        req = self._json(body)
        if not isinstance(req, dict) or not isinstance(req.get("id_data"), str) or not isinstance(req.get("pubkey"), str):
            return err(400, "id_data and pubkey are required")
        sig = self.headers.get("X-MEN-Signature")
        if not sig:
            return err(400, "missing request signature header")
        try:
            pem = norm_pem(req["pubkey"])
            identity = json.loads(req["id_data"])
        except ValueError:
            return err(400, "invalid pubkey or id_data")
        if not verify_signature(pem, body, sig):
            return err(401, "signature verification failed")
        dev = next((d for d in S.devices.values() if d["identity"] == identity), None)
        if dev is None:
            dev = {"id": str(uuid.uuid4()), "identity": identity, "pubkey": pem,
                   "status": "accepted" if S.args.auto_accept else "pending",
                   "group": None, "attributes": {}, "created": now()}
            S.devices[dev["id"]] = dev
        elif dev["pubkey"] != pem:
            return err(401, "unknown public key for this identity")
        if dev["status"] == "preauthorized":
            dev["status"] = "accepted"
        if dev["status"] != "accepted":
            return err(401, "device not accepted")
        tok = "dev." + secrets.token_urlsafe(24)
        S.device_tokens[tok] = dev["id"]
        return Reply(200, tok.encode(), ctype="application/jwt")

    # -- management -------------------------------------------------------------------------
    def _management(self, path: str, q: dict, body: bytes) -> Reply:
        m, S = self.command, self.S
        if path == MG + "/v1/deployments/artifacts" and m == "POST":
            return self._upload(body)
        if path == MG + "/v2/deployments/artifacts" and m == "GET":
            names = q.get("name", [])
            out = []
            for a in S.artifacts.values():
                if names and not any(a["name"] == n or (n.endswith("*") and a["name"].startswith(n[:-1]))
                                     for n in names):
                    continue
                if q.get("device_type") and q["device_type"][0] not in a["device_types_compatible"]:
                    continue
                out.append({k: v for k, v in a.items() if k != "_path"})
            return self._page(out, q)
        mm = re.fullmatch(MG + r"/v1/deployments/artifacts/([^/]+)", path)
        if mm and m == "GET":
            a = S.artifacts.get(mm.group(1))
            return Reply(200, {k: v for k, v in a.items() if k != "_path"}) if a else err(404, "not found")
        # devauth
        if path == MG + "/v2/devauth/devices" and m == "GET":
            return self._page([{"id": d["id"], "identity_data": d["identity"], "status": d["status"],
                                "created_ts": d["created"]} for d in S.devices.values()], q)
        if path == MG + "/v2/devauth/devices" and m == "POST":  # preauthorize
            req = self._json(body)
            if not isinstance(req, dict) or not isinstance(req.get("identity_data"), dict) \
                    or not isinstance(req.get("pubkey"), str):
                return err(400, "identity_data and pubkey are required")
            try:
                pem = norm_pem(req["pubkey"])
            except ValueError:
                return err(400, "invalid pubkey")
            if any(d["identity"] == req["identity_data"] for d in S.devices.values()):
                return err(409, "device already exists")
            did = str(uuid.uuid4())
            S.devices[did] = {"id": did, "identity": req["identity_data"], "pubkey": pem,
                              "status": "preauthorized", "group": None, "attributes": {},
                              "created": now()}
            return Reply(201, None, {"Location": f"{MG}/v2/devauth/devices/{did}"})
        mm = re.fullmatch(MG + r"/v2/devauth/devices/([^/]+)/status", path)
        if mm and m == "PUT":
            d = S.devices.get(mm.group(1))
            req = self._json(body)
            if d is None:
                return err(404, "device not found")
            if req.get("status") not in ("accepted", "rejected", "pending"):
                return err(400, "invalid status")
            d["status"] = req["status"]
            return Reply(204)
        # inventory groups
        if path == MG + "/v1/inventory/groups" and m == "GET":
            return Reply(200, sorted({d["group"] for d in S.devices.values() if d["group"]}))
        mm = re.fullmatch(MG + r"/v1/inventory/groups/([A-Za-z0-9_-]+)/devices", path)
        if mm:
            g = mm.group(1)
            if m == "GET":
                ids = [d["id"] for d in S.devices.values() if d["group"] == g]
                if not ids:
                    return err(404, "group not found")
                return self._page(sorted(ids), q)
            if m in ("PATCH", "DELETE"):
                ids = self._json(body)
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
                    return err(400, "expected a non-empty list of device ids")
                matched = [S.devices[i] for i in ids if i in S.devices]
                upd = 0
                for d in matched:
                    if m == "PATCH" and d["group"] != g:
                        d["group"], upd = g, upd + 1
                    elif m == "DELETE" and d["group"] == g:
                        d["group"], upd = None, upd + 1
                out = {"updated_count": upd}
                if m == "PATCH":
                    out["matched_count"] = len(matched)
                return Reply(200, out)
        if path.startswith(MG + "/v1/inventory/groups/"):
            return err(400, "invalid group name")
        if path == MG + "/v1/inventory/devices" and m == "GET":
            return self._page([{"id": d["id"], "attributes": [
                {"name": k, "value": v, "scope": "inventory"} for k, v in d["attributes"].items()]}
                for d in S.devices.values()], q)
        # deployments
        mm = re.fullmatch(MG + r"/v1/deployments/deployments/group/([A-Za-z0-9_-]+)", path)
        if mm and m == "POST":
            return self._create_deployment(mm.group(1), body)
        if path == MG + "/v2/deployments/deployments" and m == "GET":
            deps = [self._dep_view(d) for d in S.deployments.values()
                    if (not q.get("name") or d["name"] == q["name"][0])
                    and (not q.get("status") or d["status"] == q["status"][0])]
            return self._page(deps, q)
        mm = re.fullmatch(MG + r"/v1/deployments/deployments/([^/]+)(/statistics|/status|/devices/list|/devices/([^/]+)/log)?", path)
        if mm:
            d = S.deployments.get(mm.group(1))
            if d is None:
                return err(404, "Resource not found")
            sub = mm.group(2) or ""
            if sub == "" and m == "GET":
                return Reply(200, self._dep_view(d))
            if sub == "/statistics" and m == "GET":
                return Reply(200, self._stats(d))
            if sub == "/devices/list" and m == "GET":
                rows = [{"id": did, "status": dd["status"], "substate": dd.get("substate", ""),
                         "created": dd["created"], "finished": dd.get("finished"),
                         "device_type": S.devices[did]["attributes"].get("device_type"),
                         "log": bool(dd.get("log"))} for did, dd in d["devices"].items()]
                if q.get("status"):
                    rows = [r for r in rows if r["status"] == q["status"][0]]
                return self._page(rows, q)
            if sub == "/status" and m == "PUT":
                req = self._json(body)
                if req != {"status": "aborted"}:
                    return err(400, "status: the only allowed value is aborted")
                if d["status"] == "finished":
                    return err(422, "Deployment already finished")
                for dd in d["devices"].values():
                    if dd["status"] not in TERMINAL:
                        dd["status"] = "aborted"
                d["status"] = "finished"
                d["finished"] = now()
                return Reply(204)
            if mm.group(3) and m == "GET":
                dd = d["devices"].get(mm.group(3))
                if dd is None or not dd.get("log"):
                    return err(404, "Resource not found")
                text = "".join(f"{x.get('timestamp')} {x.get('level')}: {x.get('message')}\n" for x in dd["log"])
                return Reply(200, text.encode(), ctype="text/plain")
        return err(404, "not found")

    def _page(self, items: list, q: dict) -> Reply:
        try:
            page = int(q.get("page", ["1"])[0])
            per = int(q.get("per_page", ["20"])[0])
        except ValueError:
            raise err(400, "invalid page or per_page") from None
        if page < 1 or not 1 <= per <= 500:
            raise err(400, "invalid page or per_page")
        return Reply(200, items[(page - 1) * per: page * per], {"X-Total-Count": str(len(items))})

    def _upload(self, body: bytes) -> Reply:
        S = self.S
        ctype = self.headers.get("Content-Type") or ""
        mm = re.match(r'multipart/form-data;\s*boundary="?([^";]+)"?', ctype)
        if not mm:
            return err(400, "mime: no media type" if not ctype else "request Content-Type isn't multipart/form-data")
        parts = self._multipart(body, mm.group(1).encode())
        art = None
        for name, headers, data in parts:
            if name == "artifact":
                art = data
                break
            if name == "size":
                return err(400, "size part is not supported by this test server")
        if art is None:
            return err(400, "request does not contain artifact file")
        aid = str(uuid.uuid4())
        path = S.store / aid
        path.write_bytes(art)
        try:
            info = read_artifact(path)
        except Exception as exc:  # the real server cleans its parser's message the same way
            path.unlink()
            return err(400, f"cannot parse artifact file: {exc}")
        for a in S.artifacts.values():
            if a["name"] == info.name and set(a["device_types_compatible"]) & set(info.device_types):
                path.unlink()
                return Reply(409, {"error": "an artifact with the same name and depends already exists",
                                   "request_id": str(uuid.uuid4()), "metadata": {}})
        S.artifacts[aid] = {
            "id": aid, "name": info.name, "description": "", "device_types_compatible": info.device_types,
            "info": {"format": "mender", "version": info.version}, "signed": info.signed,
            "updates": [{"type_info": {"type": p.type}, "files": [
                {"name": f.name, "checksum": f.sha256, "size": f.size, "date": now()} for f in p.files],
                "meta_data": p.meta_data} for p in info.payloads],
            "artifact_provides": {k: v for p in info.payloads for k, v in p.provides.items()},
            "size": len(art), "modified": now(), "_path": str(path)}
        return Reply(201, None, {"Location": f"{MG}/v1/deployments/artifacts/{aid}"})

    @staticmethod
    def _multipart(body: bytes, boundary: bytes):
        delim = b"--" + boundary
        if not body.startswith(delim):
            raise err(400, "malformed multipart body")
        out = []
        for chunk in body.split(b"\r\n" + delim)[0:]:
            chunk = chunk[len(delim):] if chunk.startswith(delim) else chunk
            if chunk.startswith(b"--"):
                break
            head, sep, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
            if not sep:
                raise err(400, "malformed multipart body")
            headers = {}
            for line in head.decode("latin-1").split("\r\n"):
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            nm = re.search(r'name="([^"]*)"', headers.get("content-disposition", ""))
            if not nm:
                raise err(400, "malformed multipart part")
            out.append((nm.group(1), headers, data))
        else:
            raise err(400, "unexpected EOF")
        return out

    def _create_deployment(self, group: str, body: bytes) -> Reply:
        S = self.S
        req = self._json(body)
        if not isinstance(req, dict) or not req.get("name") or not req.get("artifact_name"):
            return err(400, "name and artifact_name are required")
        members = [d for d in S.devices.values() if d["group"] == group and d["status"] == "accepted"]
        if not members:
            return err(400, "No devices for the deployment")
        arts = [a for a in S.artifacts.values() if a["name"] == req["artifact_name"]]
        if not arts:
            return err(422, "No artifact for the deployment")
        did = str(uuid.uuid4())
        S.deployments[did] = {
            "id": did, "name": req["name"], "artifact_name": req["artifact_name"],
            "created": now(), "finished": None, "status": "pending", "groups": [group],
            "force": bool(req.get("force_installation")),
            "devices": {d["id"]: {"status": "pending", "created": now(), "log": []} for d in members}}
        return Reply(201, None, {"Location": f"{MG}/v1/deployments/deployments/{did}"})

    def _stats(self, d: dict) -> dict:
        st = {k: 0 for k in STAT_KEYS}
        for dd in d["devices"].values():
            st[dd["status"]] = st.get(dd["status"], 0) + 1
        return st

    def _dep_view(self, d: dict) -> dict:
        return {k: d[k] for k in ("id", "name", "artifact_name", "created", "finished", "status",
                                  "groups")} | {"device_count": len(d["devices"]),
                                                "type": "software", "statistics": {"status": self._stats(d)}}

    def _settle(self, d: dict) -> None:
        states = [dd["status"] for dd in d["devices"].values()]
        if all(s in TERMINAL for s in states):
            d["status"], d["finished"] = "finished", d["finished"] or now()
        elif any(s != "pending" for s in states):
            d["status"] = "inprogress"

    # -- device API -------------------------------------------------------------------------
    def _device_api(self, dev: dict, path: str, q: dict, body: bytes) -> Reply:
        m = self.command
        if path == DV + "/v1/inventory/device/attributes" and m in ("PUT", "PATCH"):
            attrs = self._json(body)
            if not isinstance(attrs, list) or not all(isinstance(a, dict) and "name" in a for a in attrs):
                return err(400, "expected a list of attributes")
            if m == "PUT":
                dev["attributes"] = {}
            for a in attrs:
                dev["attributes"][a["name"]] = a.get("value")
            return Reply(200)
        if path == DV + "/v1/deployments/device/deployments/next" and m == "GET":
            if not q.get("artifact_name") or not q.get("device_type"):
                return err(400, "artifact_name and device_type are required")
            return self._next(dev, {"artifact_name": q["artifact_name"][0],
                                    "device_type": q["device_type"][0]})
        if path == DV + "/v2/deployments/device/deployments/next" and m == "POST":
            req = self._json(body)
            prov = (req or {}).get("device_provides") if isinstance(req, dict) else None
            if not isinstance(prov, dict) or not prov.get("device_type") or not prov.get("artifact_name"):
                return err(400, "device_provides with device_type and artifact_name is required")
            return self._next(dev, prov)
        mm = re.fullmatch(DV + r"/v1/deployments/device/deployments/([^/]+)/(status|log)", path)
        if mm and m == "PUT":
            d = self.S.deployments.get(mm.group(1))
            dd = d and d["devices"].get(dev["id"])
            if dd is None:
                return err(404, "Resource not found")
            req = self._json(body)
            if mm.group(2) == "log":
                msgs = req.get("messages") if isinstance(req, dict) else None
                if not isinstance(msgs, list) or not msgs:
                    return err(400, "messages are required")
                dd["log"] = msgs
                return Reply(204)
            if not isinstance(req, dict) or req.get("status") not in STATUSES:
                return err(400, "invalid status")
            if dd["status"] == "aborted":
                return err(409, "deployment aborted")
            if dd["status"] in TERMINAL:
                return err(400, "device deployment already finished")
            dd["status"] = req["status"]
            dd["substate"] = req.get("substate", "")
            if dd["status"] in TERMINAL:
                dd["finished"] = now()
            self._settle(d)
            return Reply(204)
        return err(404, "not found")

    def _next(self, dev: dict, prov: dict) -> Reply:
        S = self.S
        dev["attributes"].setdefault("device_type", prov["device_type"])
        for d in sorted(S.deployments.values(), key=lambda x: x["created"]):
            dd = d["devices"].get(dev["id"])
            if dd is None or dd["status"] in TERMINAL:
                continue
            if prov.get("artifact_name") == d["artifact_name"] and not d["force"]:
                dd["status"], dd["finished"] = "already-installed", now()
                self._settle(d)
                continue
            arts = [a for a in S.artifacts.values() if a["name"] == d["artifact_name"]
                    and prov["device_type"] in a["device_types_compatible"]]
            if not arts:
                dd["status"], dd["finished"] = "noartifact", now()
                self._settle(d)
                continue
            a = arts[0]
            host = self.headers.get("Host") or "127.0.0.1"
            return Reply(200, {"id": d["id"], "artifact": {
                "id": a["id"], "artifact_name": a["name"],
                "source": {"uri": f"http://{host}/__download/{a['id']}",
                           "expire": "2099-01-01T00:00:00Z"},
                "device_types_compatible": a["device_types_compatible"]}})
        return Reply(204)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--token", default=None, help="a personal access token the server accepts")
    p.add_argument("--auto-accept", action="store_true")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    Handler.S = State(args)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
