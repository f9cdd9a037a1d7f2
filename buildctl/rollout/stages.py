"""Rollout stages and thresholds as the command line gives them.

  --stages canary:group=canary,field:group=field   --success 100%   --max-failures 1
  --timeout 2h
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from buildctl.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


@dataclass(frozen=True)
class Stage:
    name: str
    group: str


@dataclass(frozen=True)
class Thresholds:
    success_pct: float = 100.0  # of a stage's devices that must succeed before the next starts
    max_failures: int = 1  # failures (summed over stages) that stop the rollout when exceeded
    timeout_s: float = 7200.0
    poll_s: float = 2.0


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for item in (text or "").split(","):
        item = item.strip()
        name, sep, rest = item.partition(":")
        if not sep or not _NAME.match(name):
            raise UserError(f"--stages: {item!r} is not NAME:group=GROUP")
        key, eq, group = rest.partition("=")
        if key != "group" or not eq or not _NAME.match(group):
            raise UserError(f"--stages: stage {name}: expected group=GROUP, got {rest!r}")
        if any(s.name == name for s in stages):
            raise UserError(f"--stages: stage {name} is given twice")
        if any(s.group == group for s in stages):
            raise UserError(f"--stages: group {group} is in two stages")
        stages.append(Stage(name, group))
    return stages


def parse_percent(text: str) -> float:
    m = re.match(r"^(\d+(?:\.\d+)?)%?$", text.strip())
    if not m or not 0 < float(m.group(1)) <= 100:
        raise UserError(f"--success: {text!r} is not a percentage in (0, 100]")
    return float(m.group(1))


def parse_duration(text: str, what: str = "--timeout") -> float:
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"{what}: {text!r} is not a duration (e.g. 90s, 15m, 2h)")
    return float(m.group(1)) * _UNITS[m.group(2)]
