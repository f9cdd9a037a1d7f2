"""Mender server management API: login/PAT, artifact upload, groups, deployments, logs.

Requests go through buildctl.publish.http.Client (retries with backoff and jitter on 5xx,
429 + Retry-After, resets, timeouts). The token lives in an Authorization header only; it is
never put in an error message, a log line or a report.
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.publish.http import Client, PublishError, Response, RetryPolicy

MGMT = "/api/management"


class MenderError(PublishError):
    """The Mender server refused or kept failing (exit 1)."""


@dataclass(frozen=True)
class Credentials:
    """Either a token (PAT or JWT) or a user + password to log in with."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the secret parts
        return f"Credentials(token={'***' if self.token else None}, user={self.user!r})"


@dataclass
class UploadResult:
    name: str
    device_types: list[str]
    action: str  # uploaded | already-there
    artifact_id: str | None = None


@dataclass
class LocalArtifact:
    path: Path
    name: str
    device_types: list[str]
    checksums: list[str] = field(default_factory=list)  # payload file sha256, in order


def _error_text(resp: Response) -> str:
    try:
        data = resp.json()
        if isinstance(data, dict) and data.get("error"):
            return f"HTTP {resp.status}: {data['error']}"
    except ValueError:
        pass
    return f"HTTP {resp.status}"


class MenderAPI:
    def __init__(self, url: str, creds: Credentials, *, policy: RetryPolicy | None = None,
                 client: Client | None = None):
        self.url = url.rstrip("/")
        self.http = client or Client(policy)
        self._creds = creds
        self._token = creds.token

    # -- plumbing ---------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        if self._token is None:
            self.login()
        return {"Authorization": f"Bearer {self._token}"}

    def call(self, method: str, path: str, *, query: dict | list | None = None, json_body=None,
             body: bytes | None = None, body_file: Path | None = None,
             headers: dict[str, str] | None = None, ok=(200, 201, 204)) -> Response:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        h = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        resp = self.http.request(method, url, headers={**h, **self._auth()}, body=body,
                                 body_file=body_file)
        if resp.status == 401 and self._creds.user and self._creds.password:
            self._token = None  # a login JWT expired during a long rollout: log in again
            resp = self.http.request(method, url, headers={**h, **self._auth()}, body=body,
                                     body_file=body_file)
        if ok and resp.status not in ok:
            raise MenderError(f"{method} {path}: {_error_text(resp)}")
        return resp

    def login(self) -> None:
        """User login: Basic auth -> the raw JWT in the body."""
        c = self._creds
        if not (c.user and c.password):
            raise MenderError("Mender server: no token and no user/password to log in with")
        basic = base64.b64encode(f"{c.user}:{c.password}".encode()).decode()
        resp = self.http.request("POST", self.url + MGMT + "/v1/useradm/auth/login",
                                 headers={"Authorization": f"Basic {basic}"})
        if resp.status != 200:
            raise MenderError(f"Mender login as {c.user}: {_error_text(resp)}")
        text = resp.body.decode().strip()
        if text.startswith('"'):
            text = json.loads(text)
        self._token = text

    # -- artifacts --------------------------------------------------------------------------
    def list_artifacts(self, name: str) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            resp = self.call("GET", MGMT + "/v2/deployments/artifacts",
                             query={"name": name, "page": page, "per_page": 500}, ok=(200,))
            batch = resp.json() or []
            out.extend(batch)
            if len(batch) < 500:
                return out
            page += 1

    @staticmethod
    def _matches(remote: dict, local: LocalArtifact) -> bool:
        if remote.get("name") != local.name:
            return False
        if set(remote.get("device_types_compatible") or []) != set(local.device_types):
            return False
        sums = [f.get("checksum") for u in remote.get("updates") or [] for f in u.get("files") or []]
        return sums == local.checksums

    def find_same(self, local: LocalArtifact) -> dict | None:
        for a in self.list_artifacts(local.name):
            if self._matches(a, local):
                return a
        return None

    def upload(self, local: LocalArtifact, description: str = "") -> UploadResult:
        """Upload unless the server already holds the same payload; 409 is checked, not trusted."""
        same = self.find_same(local)
        if same is not None:
            return UploadResult(local.name, local.device_types, "already-there", same.get("id"))
        boundary = "buildctl-" + uuid.uuid4().hex
        fd, tmp = tempfile.mkstemp(prefix=".mender-upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                def part(name: str, extra: str = "", ctype: str = "") -> None:
                    out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}"
                              f"\r\n{ctype}\r\n".encode())
                part("description")
                out.write(description.encode() + b"\r\n")
                # the artifact part goes last: the server stops reading at it
                part("artifact", f'; filename="{local.path.name}"',
                     "Content-Type: application/octet-stream\r\n")
                with open(local.path, "rb") as src:
                    while block := src.read(1 << 20):
                        out.write(block)
                out.write(f"\r\n--{boundary}--\r\n".encode())
            resp = self.call("POST", MGMT + "/v1/deployments/artifacts", body_file=Path(tmp),
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                             ok=None)
        finally:
            os.unlink(tmp)
        if resp.status == 201:
            loc = resp.header("location") or ""
            return UploadResult(local.name, local.device_types, "uploaded", loc.rsplit("/", 1)[-1] or None)
        if resp.status in (409, 422):
            # a retried POST may have landed before: only the same payload counts as done
            same = self.find_same(local)
            if same is not None:
                return UploadResult(local.name, local.device_types, "already-there", same.get("id"))
            raise MenderError(f"{local.path.name}: the server holds a different artifact named "
                              f"{local.name} for {', '.join(local.device_types)} ({_error_text(resp)})")
        raise MenderError(f"upload {local.path.name}: {_error_text(resp)}")

    # -- groups -----------------------------------------------------------------------------
    def groups(self) -> list[str]:
        return self.call("GET", MGMT + "/v1/inventory/groups", ok=(200,)).json() or []

    def group_devices(self, group: str) -> list[str]:
        out: list[str] = []
        page = 1
        while True:
            resp = self.call("GET", MGMT + f"/v1/inventory/groups/{urllib.parse.quote(group)}/devices",
                             query={"page": page, "per_page": 500}, ok=(200, 404))
            if resp.status == 404:
                return out
            batch = resp.json() or []
            out.extend(batch)
            if len(batch) < 500:
                return out
            page += 1

    def add_to_group(self, group: str, device_ids: list[str]) -> dict:
        return self.call("PATCH", MGMT + f"/v1/inventory/groups/{urllib.parse.quote(group)}/devices",
                         json_body=list(device_ids), ok=(200,)).json()

    def remove_from_group(self, group: str, device_ids: list[str]) -> dict:
        return self.call("DELETE", MGMT + f"/v1/inventory/groups/{urllib.parse.quote(group)}/devices",
                         json_body=list(device_ids), ok=(200,)).json()

    # -- deployments ------------------------------------------------------------------------
    def create_group_deployment(self, group: str, name: str, artifact_name: str) -> str:
        resp = self.call("POST", MGMT + f"/v1/deployments/deployments/group/{urllib.parse.quote(group)}",
                         json_body={"name": name, "artifact_name": artifact_name}, ok=(201,))
        loc = resp.header("location") or ""
        dep = loc.rsplit("/", 1)[-1]
        if not dep:
            raise MenderError(f"deployment for group {group}: the server gave no Location")
        return dep

    def deployment(self, dep_id: str) -> dict:
        return self.call("GET", MGMT + f"/v1/deployments/deployments/{dep_id}", ok=(200,)).json()

    def deployments(self, name: str | None = None) -> list[dict]:
        q = {"name": name} if name else {}
        q.update({"per_page": 500})
        return self.call("GET", MGMT + "/v2/deployments/deployments", query=q, ok=(200,)).json() or []

    def statistics(self, dep_id: str) -> dict:
        return self.call("GET", MGMT + f"/v1/deployments/deployments/{dep_id}/statistics",
                         ok=(200,)).json()

    def devices(self, dep_id: str) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            resp = self.call("GET", MGMT + f"/v1/deployments/deployments/{dep_id}/devices/list",
                             query={"page": page, "per_page": 500}, ok=(200,))
            batch = resp.json() or []
            out.extend(batch)
            if len(batch) < 500:
                return out
            page += 1

    def abort(self, dep_id: str) -> bool:
        """True if aborted now; False if it had already finished (422)."""
        resp = self.call("PUT", MGMT + f"/v1/deployments/deployments/{dep_id}/status",
                         json_body={"status": "aborted"}, ok=(204, 422))
        return resp.status == 204

    def device_log(self, dep_id: str, device_id: str) -> str:
        resp = self.call("GET", MGMT + f"/v1/deployments/deployments/{dep_id}/devices/{device_id}/log",
                         ok=(200, 404))
        return "" if resp.status == 404 else resp.body.decode("utf-8", "replace")
