"""Board ordering by CPU tune and the split of CPUs between concurrent boards."""
from __future__ import annotations

from buildctl.builder.plan import order_boards, split_threads


def test_first_board_of_each_tune_goes_first():
    plans = order_boards([("rpi3", "raspberrypi3-64", "cortexa53", "rpi"),
                          ("rpi4", "raspberrypi4-64", "cortexa72", "rpi"),
                          ("imx8", "imx8mm-evk", "cortexa53", "nxp"),
                          ("qemu", "qemux86-64", "", "qemu")])
    assert [p.name for p in plans] == ["rpi3", "rpi4", "qemu", "imx8"]
    assert [p.warm_up for p in plans] == [True, True, True, False]
    assert plans[2].tune == "qemux86-64"  # no tune given: the machine is its own group


def test_threads_are_split_between_concurrent_boards():
    assert split_threads(16, 4) == (4, 4)
    assert split_threads(2, 8) == (1, 1)
    assert split_threads(8, 1) == (8, 8)
