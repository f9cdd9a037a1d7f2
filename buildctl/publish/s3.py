"""S3-compatible object storage: multipart uploads from disk, checked part by part and whole.

Objects go to ``<bucket>/<prefix><product>/<version>/<path in the bundle>`` (path-style URLs,
AWS Signature V4). Every request carries the SHA-256 of its payload (x-amz-content-sha256)
and every part its Content-MD5, so the server refuses a part damaged on the way. Whole
objects are checked without trusting the server to echo a SHA-256 (moto does not): the ETag
of a multipart object is md5(concatenated part MD5s)-N and of a single PUT the MD5, both
computed here from the local bytes; size and our x-amz-meta-sha256 must match too.

A rerun skips objects already there with the expected ETag and metadata, and resumes an
unfinished multipart upload of the same key: parts the server lists with the right ETag are
not sent again. SHA256SUMS is uploaded last.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from buildctl.publish.http import Client, PublishError, Response, quote_path
from buildctl.publish.plan import Item, Plan
from buildctl.publish.report import PRESENT, SENT, WOULD_SEND, FileResult, TargetReport
from buildctl.publish.targets import Target
from buildctl.release import bundle as B

EMPTY_SHA = hashlib.sha256(b"").hexdigest()
MIB = 1 << 20


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


@dataclass(frozen=True)
class Signer:
    access_key: str
    secret_key: str
    region: str

    def __call__(self, method: str, url: str, headers: dict[str, str]) -> None:
        u = urllib.parse.urlsplit(url)
        now = dt.datetime.now(dt.timezone.utc)
        amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers["x-amz-date"] = amz
        headers.setdefault("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        headers["Host"] = u.netloc
        pairs = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
        query = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(pairs))
        signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()
                  if k.lower() in ("host", "content-md5", "content-type")
                  or k.lower().startswith("x-amz-")}
        names = ";".join(sorted(signed))
        canonical = "\n".join([method, u.path or "/", query,
                               "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)), names,
                               headers["x-amz-content-sha256"]])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={names}, Signature={sig}")


def _ns(tag: str) -> str:
    return f"{{http://s3.amazonaws.com/doc/2006-03-01/}}{tag}"


def _find_all(root: ET.Element, tag: str):
    return list(root.iter(_ns(tag))) or list(root.iter(tag))


def _text(el: ET.Element, tag: str) -> str | None:
    got = el.find(_ns(tag))
    if got is None:
        got = el.find(tag)
    return None if got is None else got.text


def part_md5s(item: Item, part_size: int) -> list[tuple[bytes, str]]:
    """(md5, sha256 hex) of each part, streamed."""
    out = []
    with open(item.local, "rb") as fh:
        left = item.size
        while left > 0 or not out:
            m, s = hashlib.md5(), hashlib.sha256()
            want = min(part_size, left)
            while want > 0:
                chunk = fh.read(min(MIB, want))
                if not chunk:
                    break
                m.update(chunk)
                s.update(chunk)
                want -= len(chunk)
            out.append((m.digest(), s.hexdigest()))
            left -= part_size
    return out


def expected_etag(item: Item, part_size: int, parts: list[tuple[bytes, str]] | None) -> str:
    if item.size <= part_size:
        return item.digests().md5
    parts = parts or part_md5s(item, part_size)
    return hashlib.md5(b"".join(m for m, _ in parts)).hexdigest() + f"-{len(parts)}"


class S3:
    def __init__(self, target: Target, client: Client):
        self.t, self.c = target, client
        self.base = target.url.rstrip("/")
        self.bucket = target.options["bucket"]
        self.prefix = target.options.get("prefix", "")
        self.part_size = int(target.options.get("part_size_mb", 16)) * MIB
        self._signer: Signer | None = None

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = Signer(self.t.secret("access_key") or "", self.t.secret("secret_key")
                                  or "", self.t.options.get("region", "us-east-1"))
        return self._signer

    def url(self, key: str, query: str = "") -> str:
        return f"{self.base}/{self.bucket}/{quote_path(key)}" + (f"?{query}" if query else "")

    def call(self, method: str, key: str, query: str = "", ok=(200,), *, body: bytes | None = None,
             headers: dict | None = None, **kw) -> Response:
        h = dict(headers or {})
        if "body_file" not in kw:
            h["x-amz-content-sha256"] = hashlib.sha256(body or b"").hexdigest()
        r = self.c.request(method, self.url(key, query), headers=h, body=body, sign=self.signer,
                           **kw)
        if r.status not in ok:
            code = msg = None
            try:
                root = ET.fromstring(r.body)
                code, msg = _text(root, "Code"), _text(root, "Message")
            except ET.ParseError:
                pass
            raise PublishError(f"{self.t.name}: {method} s3://{self.bucket}/{key}: HTTP "
                               f"{r.status}" + (f" {code}: {msg}" if code else ""))
        return r


def publish(target: Target, plan: Plan, client: Client, *, dry_run: bool = False) -> TargetReport:
    s3 = S3(target, client)
    rep = TargetReport(target.name, target.type, target.url)
    sums = plan.items[-1]
    if not dry_run and sums.rel == B.SUMS:
        r = s3.call("HEAD", s3.prefix + plan.remote(sums), ok=(200, 404))
        if r.status == 200 and r.header("x-amz-meta-sha256") != sums.sha256:
            raise PublishError(f"{target.name}: s3://{s3.bucket}/{s3.prefix}{plan.remote(sums)} "
                               f"differs from the bundle's: {plan.product} {plan.version} was "
                               "published with other content; refusing to overwrite it")
    for i in plan.items:
        key = s3.prefix + plan.remote(i)
        if dry_run:
            n = max(1, -(-i.size // s3.part_size))
            rep.requests.append({"method": "PUT", "url": s3.url(key), "bytes": i.size,
                                 "parts": n if i.size > s3.part_size else 1})
            rep.files.append(FileResult(i.rel, key, i.size, WOULD_SEND))
            continue
        rep.files.append(_upload(s3, i, key, rep))
    rep.ok = True
    return rep


def _head_ok(s3: S3, key: str, item: Item, etag: str) -> tuple[bool, str | None]:
    r = s3.call("HEAD", key, ok=(200, 404))
    if r.status == 404:
        return False, None
    got = (r.header("etag") or "").strip('"')
    ok = (got == etag and r.header("content-length") == str(item.size)
          and r.header("x-amz-meta-sha256") == item.sha256)
    return ok, f"ETag {got}, {r.header('content-length')} bytes, sha256 " \
               f"{r.header('x-amz-meta-sha256')}"


def _upload(s3: S3, i: Item, key: str, rep: TargetReport) -> FileResult:
    res = FileResult(i.rel, key, i.size, PRESENT)
    multipart = i.size > s3.part_size
    parts = part_md5s(i, s3.part_size) if multipart else None
    etag = expected_etag(i, s3.part_size, parts)
    ok, _ = _head_ok(s3, key, i, etag)
    if ok:
        res.verified = True
        return res
    meta = {"x-amz-meta-sha256": i.sha256, "Content-Type": "application/octet-stream"}
    if not multipart:
        d = i.digests()
        s3.call("PUT", key, headers={**meta, "Content-MD5": base64.b64encode(
            bytes.fromhex(d.md5)).decode(), "x-amz-content-sha256": d.sha256},
            body_file=i.local)
        rep.bytes_sent += i.size
    else:
        rep.bytes_sent += _multipart(s3, i, key, parts, meta)
    res.action = SENT
    ok, seen = _head_ok(s3, key, i, etag)
    if not ok:
        raise PublishError(f"{s3.t.name}: s3://{s3.bucket}/{key}: server has {seen}, expected "
                           f"ETag {etag}, {i.size} bytes, sha256 {i.sha256}")
    res.verified = True
    return res


def _multipart(s3: S3, i: Item, key: str, parts: list[tuple[bytes, str]], meta: dict) -> int:
    upload_id, have = None, {}
    r = s3.call("GET", "", f"prefix={_q(key)}&uploads=")
    for up in _find_all(ET.fromstring(r.body), "Upload"):
        if _text(up, "Key") == key:
            upload_id = _text(up, "UploadId")
            lp = s3.call("GET", key, f"uploadId={_q(upload_id)}")
            have = {int(_text(p, "PartNumber")): (_text(p, "ETag") or "").strip('"')
                    for p in _find_all(ET.fromstring(lp.body), "Part")}
            break
    if upload_id is None:
        r = s3.call("POST", key, "uploads=", headers=meta)
        upload_id = _text(ET.fromstring(r.body), "UploadId")
    sent = 0
    etags = []
    for n, (md5, sha) in enumerate(parts, start=1):
        offset = (n - 1) * s3.part_size
        length = min(s3.part_size, i.size - offset)
        if have.get(n) == md5.hex():
            etags.append(md5.hex())
            continue
        r = s3.call("PUT", key, f"partNumber={n}&uploadId={_q(upload_id)}",
                    headers={"Content-MD5": base64.b64encode(md5).decode(),
                             "x-amz-content-sha256": sha},
                    body_file=i.local, body_range=(offset, length))
        got = (r.header("etag") or "").strip('"')
        if got != md5.hex():
            raise PublishError(f"{s3.t.name}: part {n} of {key}: server ETag {got}, "
                               f"sent MD5 {md5.hex()}")
        etags.append(got)
        sent += length
    body = ("<CompleteMultipartUpload>" + "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"{e}"</ETag></Part>'
        for n, e in enumerate(etags, start=1)) + "</CompleteMultipartUpload>").encode()
    s3.call("POST", key, f"uploadId={_q(upload_id)}", body=body,
            headers={"Content-Type": "application/xml"})
    return sent
