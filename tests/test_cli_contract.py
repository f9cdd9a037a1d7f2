"""The command line's contract, the same for every verb: exit codes, one line, the crash log
of an internal error, Ctrl-C, a closed pipe, settings read from the environment once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from buildctl import cli
from buildctl.cli import build_parser, main, verb_names
from buildctl.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, UserError
from buildctl.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
VERBS = cli.verb_names()


def _boom(exc):
    def run(args):
        raise exc
    return run


@pytest.fixture
def logs(tmp_path, monkeypatch):
    d = tmp_path / "logs"
    monkeypatch.setenv("BUILDCTL_LOG_DIR", str(d))
    return d


def _patched_main(monkeypatch, func, argv=("doctor",)):
    parser = build_parser()
    real_parse = parser.parse_args

    def parse_args(a):
        ns = real_parse(a)
        ns.func = func
        return ns

    parser.parse_args = parse_args
    monkeypatch.setattr(cli, "build_parser", lambda only=None: parser)
    return main(list(argv))


def test_internal_error_exits_70_with_one_line_and_a_crash_log(monkeypatch, capsys, logs):
    rc = _patched_main(monkeypatch, _boom(ZeroDivisionError("secret detail")))
    err = capsys.readouterr().err
    assert rc == EXIT_INTERNAL == 70
    assert err.count("\n") == 1 and "Traceback" not in err and "secret detail" not in err
    assert "this is a bug in buildctl" in err and "ZeroDivisionError" in err
    (log,) = logs.glob("crash-*.log")
    assert str(log) in err
    text = log.read_text()
    assert "Traceback" in text and "ZeroDivisionError: secret detail" in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_crash_log_falls_back_to_the_temp_dir(monkeypatch, capsys, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BUILDCTL_LOG_DIR", str(tmp_path / "file" / "logs"))  # cannot be made
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    rc = _patched_main(monkeypatch, _boom(KeyError("x")))
    assert rc == 70
    (log,) = (tmp_path / "tmp").glob("crash-*.log")
    assert str(log) in capsys.readouterr().err


def test_user_error_is_one_line_exit_2(monkeypatch, capsys, logs):
    rc = _patched_main(monkeypatch, _boom(UserError("bad.yml:3: name: two\nlines\x1b[31m")))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("buildctl: error: bad.yml:3: name: two lines") and "\x1b" not in err
    assert not logs.exists()


def test_os_errors_on_user_paths_are_one_line_exit_2(monkeypatch, capsys, logs):
    rc = _patched_main(monkeypatch, _boom(PermissionError(13, "Permission denied", "/out/x")))
    assert rc == 2
    assert capsys.readouterr().err == "buildctl: error: /out/x: Permission denied\n"
    # without a path it is not the user's to fix: a bug
    assert _patched_main(monkeypatch, _boom(OSError(5, "I/O error"))) == 70


def test_keyboard_interrupt_is_130(monkeypatch, capsys, logs):
    assert _patched_main(monkeypatch, _boom(KeyboardInterrupt())) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "buildctl: error: interrupted\n"
    assert not logs.exists()


def test_sigint_of_a_real_process_exits_130(tmp_path):
    """A verb busy in Python code (here: waiting on a stdin that never ends) gets Ctrl-C."""
    code = ("import sys, time; from buildctl import cli\n"
            "def run(args):\n    print('ready', flush=True); time.sleep(60)\n"
            "p = cli.build_parser(); real = p.parse_args\n"
            "def parse(a):\n    ns = real(a); ns.func = run; return ns\n"
            "p.parse_args = parse; cli.build_parser = lambda only=None: p\n"
            "sys.exit(cli.main(['doctor']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT),
                                     BUILDCTL_LOG_DIR=str(tmp_path)))
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip() == "buildctl: error: interrupted"


def test_closed_pipe_is_not_an_error(tmp_path):
    r = subprocess.run(f"{sys.executable} -m buildctl --help | head -c 10", shell=True, cwd=ROOT,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "Traceback" not in r.stderr and "Broken pipe" not in r.stderr


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_and_usage_errors_exit_2(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: buildctl {verb}")
    with pytest.raises(SystemExit) as exc:
        main([verb, "--no-such-option-anywhere"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_top_level_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 ok, 1 problems found, 2 bad input or usage, 130 interrupted, 70 a bug" in out


def test_settings_come_from_the_environment_given():
    s = Settings.from_environ({"BUILDCTL_CACHE_DIR": "/c", "BUILDCTL_GIT_CACHE": "/g",
                               "KAS_REPO_REF_DIR": "/m", "SOURCE_DATE_EPOCH": "5",
                               "HOME": "/h"})
    assert (s.cache_root, s.git_cache, s.repo_ref_dir, s.source_date_epoch) == \
        (Path("/c"), Path("/g"), Path("/m"), "5")
    d = Settings.from_environ({"HOME": "/h"})
    assert d.repo_ref_dir is None and d.source_date_epoch is None


def test_the_library_does_not_read_the_environment_for_settings():
    """Settings are read once in cli.main; library modules get them passed down."""
    offenders = []
    for p in sorted((ROOT / "buildctl").rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel in ("buildctl/settings.py", "buildctl/cli.py"):
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            for name in ("BUILDCTL_CACHE_DIR", "BUILDCTL_GIT_CACHE", "KAS_REPO_REF_DIR",
                         "SOURCE_DATE_EPOCH", "BUILDCTL_LOG_DIR"):
                if f'environ.get("{name}"' in line or f'environ["{name}"]' in line or \
                        f'getenv("{name}"' in line:
                    offenders.append(f"{rel}:{n}: {name}")
    assert offenders == []


def test_verbs_are_found_without_importing_them_and_each_loads_alone():
    assert verb_names() == sorted(build_parser()._subparsers._group_actions[0].choices)
    for verb in verb_names():
        choices = build_parser(verb)._subparsers._group_actions[0].choices
        assert list(choices) == [verb]


def test_a_command_imports_only_its_own_verb():
    """`buildctl artifact ...` does not pay for kas, git and jsonschema (start-up time is what
    a user waits for before the one line of a refusal)."""
    code = ("import sys; from buildctl.cli import main\n"
            "rc = main(['artifact', 'inspect', 'missing.mender'])\n"
            "heavy = [m for m in ('kas', 'git', 'jsonschema', 'buildctl.importers.kas') "
            "if m in sys.modules]\n"
            "print(rc, heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert r.stdout.strip() == "2 []", r.stdout + r.stderr
