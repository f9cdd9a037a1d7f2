"""Which boards build in which order, and how the CPUs are split between them."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class BoardPlan:
    name: str
    machine: str
    tune: str  # boards with the same tune share most target sstate
    family: str
    warm_up: bool  # first of its tune: the others wait for it


def order_boards(boards: list[tuple[str, str, str, str]]) -> list[BoardPlan]:
    """Order (name, machine, tune, family) so each tune's first board builds before the rest.

    The first board of every tune comes first (in the order given), then the remaining boards;
    the scheduler holds a board back until its tune's first board finished, so it starts from
    warm sstate instead of building the same packages a second time in parallel.
    """
    firsts: list[BoardPlan] = []
    rest: list[BoardPlan] = []
    seen: set[str] = set()
    for name, machine, tune, family in boards:
        key = tune or machine
        if key in seen:
            rest.append(BoardPlan(name, machine, key, family, warm_up=False))
        else:
            seen.add(key)
            firsts.append(BoardPlan(name, machine, key, family, warm_up=True))
    return firsts + rest


def split_threads(cpus: int | None, concurrent: int) -> tuple[int, int]:
    """(BB_NUMBER_THREADS, PARALLEL_MAKE -j) per board when ``concurrent`` boards share CPUs."""
    cpus = cpus or os.cpu_count() or 1
    per = max(1, cpus // max(1, concurrent))
    return per, per
