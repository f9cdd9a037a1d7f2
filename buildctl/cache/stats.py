"""How much of each board's sstate came from the mirror, from the build reports.

BitBake prints ``Sstate summary: Wanted W Local L Mirrors M Missed X Current C`` once per
bitbake run; the runner keeps it per phase (``phases[].sstate``) and for the main phase
(``bitbake.sstate``) in ``out/<product>/<board>-<variant>/report.json``. Objects fetched from a
mirror in the fetch phase are local in the build phase, so the mirror count is the sum over
phases and the wanted count is the main phase's.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from buildctl.errors import UserError


@dataclass(frozen=True)
class BoardSstate:
    board: str
    variant: str
    status: str
    wanted: int
    mirrors: int  # objects BitBake fetched from SSTATE_MIRRORS
    local: int  # found in the runner's own SSTATE_DIR
    missed: int  # built from source
    report: str

    @property
    def mirror_percent(self) -> float:
        return round(100.0 * self.mirrors / self.wanted, 1) if self.wanted else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mirror_percent"] = self.mirror_percent
        return d


def board_sstate(path: Path) -> BoardSstate | None:
    """The figures of one board report, or None when its build printed no Sstate summary."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or "board" not in data:
        raise UserError(f"{path}: not a buildctl board report (no `board`)")
    main = (data.get("bitbake") or {}).get("sstate")
    phases = [p.get("sstate") for p in data.get("phases") or [] if isinstance(p, dict)]
    phases = [s for s in phases if isinstance(s, dict)]
    if not main and not phases:
        return None
    summaries = phases or [main]
    try:
        last = main or summaries[-1]
        wanted = int(last["wanted"])
        mirrors = sum(int(s["mirrors"]) for s in summaries)
        missed, local = int(last["missed"]), int(last["local"]) - (mirrors - int(last["mirrors"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: bitbake.sstate: malformed Sstate summary ({exc})") from None
    return BoardSstate(board=str(data["board"]), variant=str(data.get("variant", "")),
                       status=str(data.get("status", "")), wanted=wanted, mirrors=mirrors,
                       local=max(0, local), missed=missed, report=str(path))


def product_stats(out_dir: Path) -> list[BoardSstate]:
    """Every board report under ``out_dir`` (out/<product>), sorted by board and variant."""
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: no such directory (build first, or give --out)")
    rows = [board_sstate(p) for p in sorted(out_dir.glob("*/report.json"))]
    return sorted((r for r in rows if r is not None), key=lambda r: (r.board, r.variant))
