"""`buildctl cache stats`: sstate from the mirror per board, from the reports a build writes."""
from __future__ import annotations

import json

from buildctl.builder.logparse import BitbakeLog
from buildctl.builder.report import BoardReport, write_json
from tests.conftest import ROOT, run_cli

DEMO = ROOT / "products" / "demo.yml"


def summary_line(wanted, local, mirrors, missed):
    pct = round(100 * (local + mirrors) / wanted)
    return (f"NOTE: Sstate summary: Wanted {wanted} Local {local} Mirrors {mirrors} "
            f"Missed {missed} Current 0 ({pct}% match, 100% complete)")


def sstate(line):
    log = BitbakeLog()
    log.feed(line)
    return log.sstate.to_dict()


def write_report(out, board, phases):
    """A board report as the runner writes it: one Sstate summary per bitbake run."""
    r = BoardReport(board=board, machine=board, variant="release", mode="build",
                    status="succeeded")
    for name, line in phases:
        r.phase(name).sstate = sstate(line)
    r.bitbake = {"sstate": r.phases[-1].sstate}
    write_json(out / f"{board}-release" / "report.json", r.to_dict())


def test_stats_per_board(tmp_path):
    out = tmp_path / "out" / "demo"
    # fetch phase pulled 100 objects from the mirror; the build found them local, took 30 more
    write_report(out, "qemuarm64", [("fetch", summary_line(200, 40, 100, 60)),
                                    ("build", summary_line(200, 150, 30, 20))])
    write_report(out, "qemux86-64", [("build", summary_line(100, 0, 0, 100))])
    (out / "raspberrypi5-release").mkdir(parents=True)
    (out / "raspberrypi5-release" / "report.json").write_text(json.dumps(
        {"board": "raspberrypi5", "status": "failed", "phases": []}))  # failed before bitbake
    proc = run_cli("cache", "stats", str(DEMO), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    boards = {b["board"]: b for b in json.loads(proc.stdout)["boards"]}
    assert set(boards) == {"qemuarm64", "qemux86-64"}
    arm = boards["qemuarm64"]
    assert (arm["wanted"], arm["mirrors"], arm["local"], arm["missed"]) == (200, 130, 50, 20)
    assert arm["mirror_percent"] == 65.0
    assert boards["qemux86-64"]["mirror_percent"] == 0.0
    proc = run_cli("cache", "stats", str(DEMO), "--out", str(out))
    assert "130 (65.0%)" in proc.stdout


def test_stats_bad_report_one_line(tmp_path):
    out = tmp_path / "out"
    (out / "x-release").mkdir(parents=True)
    (out / "x-release" / "report.json").write_text('{"board": "x",\n')
    proc = run_cli("cache", "stats", str(DEMO), "--out", str(out))
    assert proc.returncode == 2 and "report.json:2" in proc.stderr
    assert proc.stderr.count("\n") == 1
    proc = run_cli("cache", "stats", str(DEMO), "--out", str(tmp_path / "none"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr
