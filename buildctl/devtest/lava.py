"""LAVA job definitions for boards in a lab, and submitting one and following its result.

A job deploys the board's disk image (LAVA's QEMU device type from tmpfs for the emulated
boards, the lab's flasher for real ones, see lava-boards.yml), boots it, logs in on the
console and runs the same smoke checks as the QEMU runner (checks.yml) as an inline LAVA
test definition: one test case per check, passed when the command exits as expected and its
output matches.

Submission uses LAVA's REST API v0.2: POST <url>/api/v0.2/jobs/ with the definition, then
GET <url>/api/v0.2/jobs/<id>/ until its state is Finished, the test cases from
<url>/api/v0.2/jobs/<id>/tests/ and the log from .../logs/ (YAML, one entry a line; a test
case's log_start_line/log_end_line give its excerpt). The token is sent as
`Authorization: Token ...`.
"""
from __future__ import annotations

import json
import os
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from jinja2 import Environment, StrictUndefined

from buildctl.devtest import qemu
from buildctl.devtest.qemu import Check
from buildctl.devtest.report import Run, Step
from buildctl.errors import UserError
from buildctl.fsutil import write_atomic

API = "api/v0.2"
COMPRESSION = {".gz": "gz", ".xz": "xz", ".bz2": "bz2", ".zst": "zstd", ".zip": "zip"}
RESULT_STATUS = {"pass": "passed", "fail": "failed", "skip": "skipped", "unknown": "failed"}


@dataclass(frozen=True)
class LabBoard:
    device_type: str
    deploy: str  # "tmpfs" | "flasher"
    arch: str | None = None


def lab_board(board: str) -> LabBoard:
    data = yaml.safe_load(resources.files(__package__).joinpath("lava-boards.yml").read_text())
    entry = data.get(board) or {"device_type": board, "deploy": "flasher"}
    return LabBoard(**entry)


def step_script(check: Check) -> str:
    """One shell line of the test definition: run the check, report it as a LAVA test case."""
    cmd = f"sh -c {shlex.quote(check.command)}"
    if check.expect_output is None:
        cond = f"{cmd} >/dev/null 2>&1; test $? -eq {check.expect_exit}"
    else:
        cond = (f"out=$({cmd} 2>&1); test $? -eq {check.expect_exit} && "
                f"printf '%s\\n' \"$out\" | grep -Eqx -- {shlex.quote(check.expect_output)}")
    return (f"if {cond}; then lava-test-case {check.name} --result pass; "
            f"else lava-test-case {check.name} --result fail; fi")


def render_job(product, board, variant: str, checks: list[Check], *, image_url: str,
               boot_timeout: float = 300.0, device_type: str | None = None) -> str:
    lab = lab_board(board.name)
    context = {}
    disk_if = "virtio"
    if lab.deploy == "tmpfs":
        m = qemu.machine_for(board.name)
        disk_if = m.disk_if
        context = {"arch": lab.arch, "machine": m.machine, "cpu": m.cpu_tcg,
                   "memory": 1024, "extra_options": [f"-bios {m.firmware[0]}"]}
    suffix = Path(urllib.parse.urlparse(image_url).path).suffix
    boot_minutes = max(1, int(boot_timeout + 59) // 60)
    test_minutes = max(1, int(sum(c.timeout for c in checks) + 59) // 60)
    env = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["q"] = lambda v: json.dumps(v, ensure_ascii=False)  # a YAML flow scalar
    template = env.from_string(resources.files(__package__).joinpath("templates/job.yaml.j2").read_text())
    return template.render(
        product=product.name, board=board.name, variant=variant,
        job_name=f"buildctl {product.name} {board.name} {variant} {product.release.version}",
        device_type=device_type or lab.device_type, deploy=lab.deploy, context=context,
        disk_if=disk_if, image_url=image_url, compression=COMPRESSION.get(suffix),
        artifact_name=product.artifact_name(board.name, variant),
        boot_minutes=boot_minutes, test_minutes=test_minutes,
        job_minutes=2 * boot_minutes + test_minutes + 5,
        login_prompt="login:", username="root", shell_prompt=f"root@{board.machine}:",
        steps=[step_script(c) for c in checks])


# -- the REST API ---------------------------------------------------------------------------

class LavaClient:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UserError(f"--lava: {url!r} is not an http(s) URL of a LAVA server")
        self.base = url.rstrip("/") + "/" + API + "/"
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            return json.loads(self._request(method, path, body) or b"{}")
        except json.JSONDecodeError:
            raise UserError(f"LAVA {self.base + path}: the answer is not JSON") from None

    def _request(self, method: str, path: str, body: dict | None = None,
                 accept: str = "application/json") -> bytes:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise UserError(f"LAVA {method} {req.full_url}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(f"LAVA {req.full_url}: {getattr(exc, 'reason', exc)}") from None

    def submit(self, definition: str) -> int:
        answer = self._call("POST", "jobs/", {"definition": definition})
        ids = answer.get("job_ids") or []
        if not ids:
            raise UserError(f"LAVA did not accept the job: {answer.get('message', answer)}")
        return int(ids[0])

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"jobs/{job_id}/")

    def tests(self, job_id: int) -> list[dict]:
        out, path = [], f"jobs/{job_id}/tests/"
        while path:
            page = self._call("GET", path)
            out += page.get("results", [])
            nxt = page.get("next")
            path = nxt[len(self.base):] if nxt and nxt.startswith(self.base) else None
        return out


    def log(self, job_id: int) -> list[dict]:
        """The job's log: one entry ({dt, lvl, msg}) per line of LAVA's YAML log."""
        text = self._request("GET", f"jobs/{job_id}/logs/", accept="application/yaml")
        try:
            entries = yaml.safe_load(text) or []
        except yaml.YAMLError:
            raise UserError(f"LAVA job {job_id}: the log is not YAML") from None
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def excerpt(log: list[dict], start: int | None, end: int | None, lines: int = 40) -> str:
    """What the board wrote between two log lines (LAVA counts them from 1), as text."""
    if not log:
        return ""
    first = max(1, start or 1)
    last = min(len(log), end or len(log))
    out = [str(e.get("msg", "")) for e in log[first - 1:last] if e.get("lvl") in ("target", "input", "feedback")]
    return "\n".join(out[-lines:])


def follow(client: LavaClient, job_id: int, *, poll: float = 10.0, timeout: float = 3600.0,
           clock=time.monotonic, sleep=time.sleep) -> dict:
    """Wait until the job is Finished; return its last state."""
    deadline = clock() + timeout
    while True:
        job = client.job(job_id)
        if job.get("state") == "Finished":
            return job
        if clock() > deadline:
            raise UserError(f"LAVA job {job_id} not finished after {timeout:g} s "
                            f"(state {job.get('state')})")
        sleep(poll)


def run_from_results(product, board, variant: str, job_id: int, job: dict, results: list[dict],
                     checks: list[Check], url: str, log: list[dict] | None = None) -> Run:
    log = log or []
    steps = [Step(name="job", status="passed" if job.get("health") == "Complete" else "failed",
                  message=f"LAVA job {job_id}: {job.get('health')}", serial=excerpt(log, None, None))]
    by_name = {r.get("name"): r for r in results if r.get("suite") != "lava"}
    for c in checks:
        r = by_name.get(c.name)
        if r is None:
            steps.append(Step(name=c.name, status="failed" if steps[0].status == "failed" else "skipped",
                              message="no result from the lab", command=c.command))
        else:
            steps.append(Step(name=c.name, status=RESULT_STATUS.get(r.get("result"), "failed"),
                              message=f"LAVA result {r.get('result')}", command=c.command,
                              serial=excerpt(log, r.get("log_start_line"), r.get("log_end_line"))))
    return Run(product=product.name, board=board.name, runner="lava",
               target={"lava": url, "job": str(job_id)}, steps=steps,
               facts={"variant": variant, "health": job.get("health")})


def run_command(args, product, board, variant: str, checks: list[Check], *,
                image: Path | None = None, report_path: Path | None = None) -> int:
    """Write and/or submit the board's job. `image` is the local copy of what --image-url
    serves: the report names it by its sha256, so that the release gate knows what passed."""
    from buildctl.commands.test import show
    from buildctl.devtest import report
    from buildctl.errors import EXIT_PROBLEMS
    from buildctl.secrets import SecretRef

    if not args.image_url:
        raise UserError("--image-url: a LAVA job needs the URL the lab downloads the image from")
    definition = render_job(product, board, variant, checks, image_url=args.image_url,
                            boot_timeout=args.boot_timeout)
    if args.lava_job:
        write_atomic(args.lava_job, definition)
        if not args.lava:
            return 0
    token = None
    ref = args.lava_token or "env:LAVA_TOKEN"
    try:
        sref = SecretRef.parse(ref)
    except ValueError as exc:
        raise UserError(f"--lava-token: {exc}") from None
    if args.lava_token or os.environ.get(sref.target):
        token = sref.resolve_bytes().decode().strip()
    client = LavaClient(args.lava, token)
    t0 = time.monotonic()
    job_id = client.submit(definition)
    job = follow(client, job_id, poll=args.lava_poll, timeout=args.lava_wait)
    run_ = run_from_results(product, board, variant, job_id, job, client.tests(job_id), checks,
                            args.lava, client.log(job_id))
    run_.seconds = time.monotonic() - t0
    if image is not None:
        run_.facts["image_sha256"] = report.sha256_file(image)
        run_.facts["image_url"] = args.image_url
    report.write(run_, json_path=report_path, junit_path=args.junit)
    show(args, run_)
    return 0 if run_.verdict == "passed" else EXIT_PROBLEMS
