"""The serial console reader, fed through a socket pair in chunks the way a guest writes."""
from __future__ import annotations

import socket
import time

import pytest

from buildctl.devtest.qemu import SerialConsole


@pytest.fixture
def pair():
    guest, ours = socket.socketpair()
    con = SerialConsole(ours)
    yield guest, con
    guest.close()
    con.close()


def test_a_short_prompt_after_a_carriage_return_is_seen_at_once(pair):
    guest, con = pair
    guest.sendall(b"Poky 5.0 box ttyS0\r\n\r\nbox login: ")
    con.expect(r"login:\s*$", timeout=2)
    assert con.text == "Poky 5.0 box ttyS0\n\nbox login: "


def test_escape_sequences_and_line_ends_split_across_chunks_are_cleaned(pair):
    guest, con = pair
    for chunk in (b"\x1b[0m\x1b[?7l\x1b[2JSeaBIOS\r", b"\nok \x1b[", b"6n/ # "):
        guest.sendall(chunk)
        time.sleep(0.05)
    con.expect(r"/ # $", timeout=2)
    assert con.text == "SeaBIOS\nok / # "


def test_expect_times_out_and_reports_a_closed_console(pair):
    guest, con = pair
    guest.sendall(b"booting\n")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        con.expect("login:", timeout=0.3)
    assert 0.3 <= time.monotonic() - t0 < 2
    guest.close()
    from buildctl.devtest.qemu import ConsoleClosed

    with pytest.raises(ConsoleClosed):
        con.expect("login:", timeout=5)
    assert con.excerpt(0) == "booting"
