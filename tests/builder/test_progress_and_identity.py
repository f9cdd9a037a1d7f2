"""What a person sees while boards build, and TMPDIR reuse only with the same image."""
from __future__ import annotations

import io

from rich.console import Console

from buildctl.builder.caches import CacheSettings
from buildctl.builder.logparse import BitbakeLog
from buildctl.builder.progress import LiveView, PlainView
from buildctl.builder.runner import BoardJob, BoardRunner, BuildOptions


def test_plain_view_prints_timestamped_phase_changes():
    out = io.StringIO()
    v = PlainView(["rpi4", "qemu"], stream=out, every=3600)
    log = BitbakeLog()
    log.feed("NOTE: Running task 7 of 120 (/l/meta/recipes-core/zlib/zlib_1.3.bb:do_compile)")
    v.update("rpi4", "build", log)
    v.update("rpi4", "build", log)  # no phase change, within `every`: quiet
    v.update("rpi4", "succeeded", None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("rpi4: build tasks 7/120 (0s)") and lines[0][2] == ":"
    assert "rpi4: succeeded" in lines[1]


def test_live_view_has_one_line_per_board_with_phase_tasks_elapsed():
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=120, color_system=None)
    v = LiveView(["rpi4", "qemu"], console=con)
    log = BitbakeLog()
    log.feed("NOTE: Running task 42 of 300 (/l/meta/recipes-core/busybox/busybox_1.36.1.bb:do_compile)")
    v.update("rpi4", "build", log)
    con.print(v._table())
    text = buf.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("rpi4"))
    assert "build" in row and "42/300" in row and "busybox_1.36.1.bb:do_compile" in row
    assert any(line.startswith("qemu") and "waiting" in line for line in text.splitlines())


class _NoRuntime:
    name = "docker"


def test_tmpdir_from_another_image_is_not_reused(tmp_path):
    kas = tmp_path / "b.yml"
    kas.write_text("header: {version: 14}\nmachine: m\nrepos: {}\n")
    job = BoardJob("b", "m", "release", kas)
    caches = CacheSettings(tmp_path / "s", tmp_path / "d", tmp_path / "g")
    opts = BuildOptions(out_dir=tmp_path / "out", owner=(1000, 1000), series="scarthgap")

    def prepare(digest):
        r = BoardRunner(_NoRuntime(), caches, opts, {"image_digest": digest})
        rep = r.new_report(job)
        r._prepare_dirs(job, rep)
        return rep

    prepare("sha256:aaa")
    tmpdir = tmp_path / "out/b-release/work/build/tmp"
    (tmpdir / "stamps").mkdir(parents=True)
    assert prepare("sha256:aaa").cache_identity and tmpdir.exists()  # same image: kept
    prepare("sha256:bbb")
    assert not tmpdir.exists()  # another image: stale TMPDIR removed, sstate untouched
