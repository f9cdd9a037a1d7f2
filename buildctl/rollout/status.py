"""`rollout status`: each stage and device as the server sees it now, with a log excerpt for
every failed device. The state file names the server, the credential references (never their
values) and the deployments; everything else is asked of the server."""
from __future__ import annotations

import json
from pathlib import Path

from buildctl.errors import UserError
from buildctl.fsutil import write_atomic
from buildctl.rollout.mender_api import MenderAPI

LOG_LINES = 15


def save_state(path: Path, result: dict, creds: dict[str, str | None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"rollout": result, "credentials": creds}, indent=2,
                                  sort_keys=True) + "\n")


def load_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError:
        raise UserError(f"{path}: no rollout recorded here (run `buildctl rollout RELEASE_DIR` "
                        "first, or give --state)") from None
    except ValueError as exc:
        raise UserError(f"{path}: not a rollout state file ({exc})") from None


def excerpt(log: str, lines: int = LOG_LINES) -> str:
    """The error lines (what went wrong) and the last lines (where it stopped), in order."""
    all_lines = [ln for ln in log.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(all_lines) if " error" in ln.lower()[:60] or "error:" in ln.lower()]
    tail = list(range(max(0, len(all_lines) - 5), len(all_lines)))
    keep = sorted(set(errors[-(lines - len(tail)):]) | set(tail))
    return "\n".join(all_lines[i] for i in keep)


def status(api: MenderAPI, state: dict) -> dict:
    ro = state["rollout"]
    out = {"release": ro["release"], "server": ro["server"], "ok": ro["ok"],
           "error": ro["error"], "artifact_names": ro["artifact_names"], "stages": []}
    for st in ro["stages"]:
        s = {"name": st["name"], "group": st["group"], "state": st["state"], "deployments": [],
             "devices": []}
        for dep in st["deployments"]:
            d = api.deployment(dep)
            s["deployments"].append({"id": dep, "name": d.get("name"), "status": d.get("status"),
                                     "artifact_name": d.get("artifact_name"),
                                     "statistics": api.statistics(dep)})
            for dev in api.devices(dep):
                row = {"id": dev["id"], "deployment": dep, "status": dev.get("status"),
                       "substate": dev.get("substate") or "",
                       "device_type": (dev.get("device_type") or "")}
                if dev.get("status") == "failure":
                    row["log"] = excerpt(api.device_log(dep, dev["id"]))
                s["devices"].append(row)
        out["stages"].append(s)
    return out
