"""BitBake output parsing on samples in BitBake's real line formats (knotty, runqueue, msg)."""
from __future__ import annotations

from buildctl.builder.logparse import parse_lines

SUCCESS = """\
Loading cache...done.
Loaded 1871 entries from dependency cache.
Parsing recipes...done.
Parsing of 924 .bb files complete (923 cached, 1 parsed). 1871 targets, 68 skipped, 0 masked, 0 errors.
NOTE: Resolving any missing task queue dependencies

Build Configuration:
BB_VERSION           = "2.8.0"
MACHINE              = "raspberrypi4-64"
NOTE: Fetching uninative binary shim file:///srv/dl/uninative/x86_64-nativesdk-libc-4.4.tar.xz
Initialising tasks...done.
Sstate summary: Wanted 1755 Local 679 Mirrors 12 Missed 1064 Current 3593 (39% match, 79% complete)
NOTE: Executing SetScene Tasks
NOTE: Running setscene task 1 of 691 (/work/poky/meta/recipes-devtools/quilt/quilt-native_0.67.bb:do_populate_sysroot_setscene)
NOTE: Running setscene task 691 of 691 (virtual:native:/work/poky/meta/recipes-core/zlib/zlib_1.3.1.bb:do_populate_sysroot_setscene)
NOTE: Executing Tasks
NOTE: Running task 1 of 1064 (/work/poky/meta/recipes-core/busybox/busybox_1.36.1.bb:do_fetch)
NOTE: recipe busybox-1.36.1-r0: task do_fetch: Started
NOTE: recipe busybox-1.36.1-r0: task do_fetch: Succeeded
NOTE: Running noexec task 2 of 1064 (/work/poky/meta/recipes-core/images/core-image-minimal.bb:do_build)
WARNING: hello-1.0-r0 do_package_qa: QA Issue: File /usr/bin/hello in package hello doesn't have GNU_HASH (didn't pass LDFLAGS?) [ldflags]
NOTE: Running task 1064 of 1064 (/work/poky/meta/recipes-core/images/core-image-minimal.bb:do_build)
NOTE: Tasks Summary: Attempted 4657 tasks of which 3593 didn't need to be rerun and all succeeded.

Summary: There was 1 WARNING message.
"""

FAILURE = """\
Sstate summary: Wanted 120 Local 0 Mirrors 0 Missed 120 Current 310 (0% match, 72% complete)
NOTE: Executing Tasks
NOTE: Running task 87 of 402 (/work/layers/meta-app/recipes-app/hello/hello_1.0.bb:do_compile)
NOTE: recipe hello-1.0-r0: task do_compile: Started
ERROR: hello-1.0-r0 do_compile: Execution of '/build/tmp/work/cortexa72-poky-linux/hello/1.0/temp/run.do_compile.4242' failed with exit code 1
ERROR: Logfile of failure stored in: /build/tmp/work/cortexa72-poky-linux/hello/1.0/temp/log.do_compile.4242
NOTE: recipe hello-1.0-r0: task do_compile: Failed
ERROR: Task (/work/layers/meta-app/recipes-app/hello/hello_1.0.bb:do_compile) failed with exit code '1'
NOTE: Tasks Summary: Attempted 397 tasks of which 310 didn't need to be rerun and 1 failed.

Summary: 1 task failed:
  /work/layers/meta-app/recipes-app/hello/hello_1.0.bb:do_compile
    log: /build/tmp/work/cortexa72-poky-linux/hello/1.0/temp/log.do_compile.4242
Summary: There was 1 ERROR message, returning a non-zero exit code.
"""


def test_successful_build_progress_sstate_and_counts():
    log = parse_lines(SUCCESS.splitlines())
    s = log.sstate
    assert (s.wanted, s.local, s.mirrors, s.missed, s.current) == (1755, 679, 12, 1064, 3593)
    assert (s.match_percent, s.complete_percent) == (39, 79)
    assert (log.progress.tasks_done, log.progress.tasks_total) == (1064, 1064)
    assert (log.progress.setscene_done, log.progress.setscene_total) == (691, 691)
    assert log.tasks_attempted == 4657 and log.tasks_run == 1064 and log.tasks_failed == 0
    assert log.warnings == ["hello-1.0-r0 do_package_qa: QA Issue: File /usr/bin/hello in package "
                            "hello doesn't have GNU_HASH (didn't pass LDFLAGS?) [ldflags]"]
    assert log.errors == [] and log.failures == []
    assert log.progress.current.endswith("core-image-minimal.bb:do_build")


def test_failure_names_recipe_task_log_once():
    log = parse_lines(FAILURE.splitlines())
    assert len(log.failures) == 1
    f = log.failures[0]
    assert (f.recipe, f.task, f.exit_code) == ("hello-1.0-r0", "do_compile", "1")
    assert f.log == "/build/tmp/work/cortexa72-poky-linux/hello/1.0/temp/log.do_compile.4242"
    assert f.recipe_file == "/work/layers/meta-app/recipes-app/hello/hello_1.0.bb"
    assert log.tasks_failed == 1 and log.tasks_run == 87
    assert (log.progress.tasks_done, log.progress.tasks_total) == (87, 402)
    assert log.sstate.missed == 120 and log.sstate.match_percent == 0
    assert any("Execution of" in e for e in log.errors)


def test_older_sstate_formats_and_multiconfig_task_names():
    dunfell = parse_lines(["Sstate summary: Wanted 10 Found 4 Missed 6 Current 0 (40% match, 40% complete)"])
    assert (dunfell.sstate.local, dunfell.sstate.mirrors, dunfell.sstate.missed) == (4, 0, 6)
    honister = parse_lines(["Sstate summary: Wanted 10 Local 3 Network 2 Missed 5 Current 1 (50% match, 54% complete)"])
    assert (honister.sstate.local, honister.sstate.mirrors) == (3, 2)
    mc = parse_lines([
        "ERROR: Task (mc:initramfs:/work/poky/meta/recipes-kernel/linux/linux-yocto_6.6.bb:do_compile) failed with exit code '1'"])
    assert mc.failures[0].task == "do_compile"
    assert mc.failures[0].recipe_file == "/work/poky/meta/recipes-kernel/linux/linux-yocto_6.6.bb"
    assert mc.failures[0].recipe == "linux-yocto-6.6"


def test_unrelated_lines_and_setup_errors():
    log = parse_lines(["random text", "Currently  2 running tasks (5 of 10)  50% |###   |",
                       "ERROR: MACHINE=nope is invalid. Please set a valid MACHINE in your "
                       "local.conf, environment or other configuration file."])
    assert log.sstate is None and log.failures == []
    assert log.errors == ["MACHINE=nope is invalid. Please set a valid MACHINE in your "
                          "local.conf, environment or other configuration file."]
    assert log.tasks_run is None


def test_sstate_summary_after_a_progress_message_on_the_same_line():
    # what bitbake 2.8 printed without a terminal in a real `bitbake -n core-image-minimal`
    log = parse_lines(["Initialising tasks...Sstate summary: Wanted 1078 Local 0 Mirrors 0 "
                       "Missed 1078 Current 0 (0% match, 0% complete)",
                       "NOTE: Tasks Summary: Attempted 2322 tasks of which 0 didn't need to be "
                       "rerun and all succeeded."])
    assert (log.sstate.wanted, log.sstate.missed, log.tasks_run) == (1078, 1078, 2322)


def test_kas_errors_explain_a_failure_before_bitbake_ran():
    log = parse_lines([
        "2026-11-24 21:26:10 - INFO     - kas 5.5 started on Debian GNU/Linux bookworm",
        '2026-11-24 21:26:10 - ERROR    - Command "/w$ git clone -q --bare -- https://git.example.com/meta-x /m/x" failed:',
        "fatal: unable to access 'https://git.example.com/meta-x/': Could not resolve host: git.example.com",
        "2026-11-24 21:26:10 - ERROR    - fetch repos failed: error code 128",
    ])
    assert log.errors[0].startswith('kas: Command "/w$ git clone') and len(log.errors) == 2
    assert log.errors[1] == "kas: fetch repos failed: error code 128"


KAS_GIT_FAILURE = """\
2026-11-30 08:50:20 - INFO     - Cloning repository meta-bsp
2026-11-30 08:50:20 - ERROR    - Command "/work$ git clone -q -- https://git.example.invalid/meta-bsp /work/meta-bsp" failed:
fatal: unable to access 'https://git.example.invalid/meta-bsp/': Could not resolve host: git.example.invalid
2026-11-30 08:50:20 - ERROR    - fetch repos failed: error code 128
"""

FETCH_FAILURE = """\
NOTE: Running task 3 of 402 (/work/layers/meta-app/recipes-app/hello/hello_1.0.bb:do_fetch)
ERROR: hello-1.0-r0 do_fetch: Fetcher failure: Unable to find revision 0123abcd in branch main even from upstream
ERROR: hello-1.0-r0 do_fetch: Bitbake Fetcher Error: FetchError('Unable to fetch URL from any source.', 'git://git.example.invalid/hello.git;branch=main')
ERROR: Logfile of failure stored in: /build/tmp/work/hello/1.0/temp/log.do_fetch.42
ERROR: Task (/work/layers/meta-app/recipes-app/hello/hello_1.0.bb:do_fetch) failed with exit code '1'
2026-11-30 08:50:20 - ERROR    - Command "/bin/sh -c 'bitbake core-image-minimal'" failed with error 1
"""


def test_root_cause_is_the_failing_tools_first_own_error():
    # kas quotes git's own message after the command line; the summary line is a consequence
    log = parse_lines(KAS_GIT_FAILURE.splitlines()).to_dict()
    assert log["root_cause"] == ("fatal: unable to access 'https://git.example.invalid/meta-bsp/': "
                                 "Could not resolve host: git.example.invalid (git clone -q -- "
                                 "https://git.example.invalid/meta-bsp /work/meta-bsp)")
    log = parse_lines(FETCH_FAILURE.splitlines()).to_dict()
    assert log["root_cause"].startswith("hello-1.0-r0 do_fetch: Fetcher failure: Unable to find revision")
    # a task that only says "Execution of ... failed": that line, until the task log says more
    log = parse_lines(FAILURE.splitlines()).to_dict()
    assert log["root_cause"].startswith("hello-1.0-r0 do_compile: Execution of")
    # a tool that crashed: the exception at the end of its traceback
    log = parse_lines(["NOTE: Tasks Summary: Attempted 2 tasks of which 0 didn't need to be rerun and all succeeded.",
                       "Traceback (most recent call last):", '  File "x", line 1, in <module>',
                       "AttributeError: 'bytes' object has no attribute 'createCopy'",
                       "2026-11-30 08:45:59 - ERROR    - Shell returned non-zero exit status"]).to_dict()
    assert log["root_cause"] == "AttributeError: 'bytes' object has no attribute 'createCopy'"


def test_task_log_cause_reads_the_tools_line(tmp_path):
    from buildctl.builder.logparse import task_log_cause

    log = tmp_path / "log.do_compile.1"
    log.write_text("DEBUG: Executing shell function do_compile\nNOTE: make -j 4\n"
                   "gcc -c hello.c\nhello.c:3:1: error: expected ';' before '}' token\n"
                   "make: *** [Makefile:12: all] Error 1\n")
    assert task_log_cause(log) == "hello.c:3:1: error: expected ';' before '}' token"
    assert task_log_cause(tmp_path / "missing") == ""
