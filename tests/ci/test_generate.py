"""`buildctl ci generate/check`: the pipelines a user commits, checked the way CI systems read them."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.helpers import skips

DEMO = ROOT / "products" / "demo.yml"
GOLDEN = Path(__file__).parent / "golden"
FILES = {"jenkins": "demo.jenkins.Jenkinsfile", "github": "demo.github.yml",
         "gitlab": "demo.gitlab.yml"}
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}
TESTS = ["test-qemux86-64-release", "test-qemuarm64-release"]  # the emulated boards: QEMU
BOARDS = ["qemux86-64", "qemuarm64", "genericx86-64", "beaglebone-yocto", "raspberrypi4-64",
          "raspberrypi5", "jetson-orin-nano-devkit", "olimex-imx8mp-evb"]


def generate(provider: str, tmp_path: Path, *extra: str) -> str:
    out = tmp_path / f"pipeline-{provider}.yml"
    proc = run_cli("ci", "generate", str(DEMO), "--provider", provider, "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def check_jsonschema() -> str:
    return skips.tool("check-jsonschema", "pip install '.[test]'")


@pytest.mark.parametrize("provider", sorted(FILES))
def test_golden_files_match_what_generate_writes(provider, tmp_path):
    assert generate(provider, tmp_path) == (GOLDEN / FILES[provider]).read_text(), \
        f"tests/ci/golden/{FILES[provider]} is stale: regenerate it with `buildctl ci generate`"


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_pipelines_validate_against_the_providers_schema(provider, tmp_path):
    tool = check_jsonschema()
    path = tmp_path / "pipeline.yml"
    path.write_text(generate(provider, tmp_path))
    proc = subprocess.run([tool, "--builtin-schema", SCHEMAS[provider], str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the validator does reject a broken pipeline (a job with an unknown key)
    data = yaml.safe_load(path.read_text())
    job = next(k for k in data.get("jobs", data) if k.startswith("build-"))
    (data["jobs"] if "jobs" in data else data)[job]["stagez"] = "x"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(data))
    proc = subprocess.run([tool, "--builtin-schema", SCHEMAS[provider], str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0


def test_output_is_deterministic(tmp_path):
    for provider in FILES:
        first = generate(provider, tmp_path)
        proc = subprocess.run(
            [os.sys.executable, "-m", "buildctl", "ci", "generate", str(DEMO), "--provider",
             provider], capture_output=True, text=True, cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="12345", TZ="Asia/Tokyo"))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == first


def test_github_one_job_per_board_and_variant_tune_order_no_fail_fast(tmp_path):
    data = yaml.safe_load(generate("github", tmp_path))
    jobs = data["jobs"]
    builds = {k: v for k, v in jobs.items() if k.startswith("build-")}
    assert sorted(builds) == sorted(f"build-{b}-{v}" for b in BOARDS for v in ("release", "debug"))
    for board in BOARDS:
        first, second = builds[f"build-{board}-release"], builds[f"build-{board}-debug"]
        assert "needs" not in first
        # the debug build shares the tune: it waits for the release build, even a failed one
        assert second["needs"] == [f"build-{board}-release"]
        assert second["if"] == "${{ !cancelled() }}"
    assert not any("strategy" in j for j in jobs.values())  # no matrix, so no fail-fast
    image = data["env"]["BUILDCTL_IMAGE"]
    assert re.fullmatch(r"buildctl-builder:scarthgap-[0-9a-f]{12}", image)
    for job in builds.values():
        steps = job["steps"]
        run = " ".join(s.get("run", "") for s in steps)
        assert f"--image {image}" in run
        upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
        assert upload and upload[0]["if"] == "always()"
        assert job["env"] == {"MENDER_TENANT_TOKEN": "${{ secrets.MENDER_TENANT_TOKEN }}"}
        assert any(s.get("uses", "").startswith("actions/cache") for s in steps)
    assert jobs["release"]["needs"] == [f"build-{b}-release" for b in BOARDS] + TESTS
    assert jobs["publish"]["needs"] == ["release"]
    assert jobs["rollout-field"]["needs"] == ["rollout-canary"]
    assert jobs["rollout-field"]["environment"] == "field"  # reviewers approve the field stage
    secrets = set(re.findall(r"secrets\.([A-Z_0-9]+)", (GOLDEN / FILES["github"]).read_text()))
    assert secrets == {"MENDER_TENANT_TOKEN", "ARTIFACT_SIGNING_PEM", "MENDER_PAT",
                       "ARTIFACTORY_TOKEN"}


def test_gitlab_followers_run_after_a_failed_leader_and_field_is_manual(tmp_path):
    data = yaml.safe_load(generate("gitlab", tmp_path))
    assert data["build-qemuarm64-debug"]["needs"] == [
        {"job": "build-qemuarm64-release", "artifacts": False}]
    assert data["build-qemuarm64-debug"]["when"] == "always"
    assert data["build-qemuarm64-release"]["needs"] == []
    assert data["build-qemuarm64-release"]["artifacts"]["when"] == "always"
    field = data["rollout-field"]["rules"][0]
    assert field["when"] == "manual" and field["allow_failure"] is False
    assert "when" not in data["rollout-canary"]["rules"][0]
    script = " ".join(data["build-qemuarm64-release"]["script"])
    assert 'install -D -m 600 "$ARTIFACT_SIGNING_PEM" keys/artifact-signing.pem' in script


def jenkins_stages(text: str) -> list[str]:
    return re.findall(r"^\s*stage\('([^']*)'\)", text, re.M)


def test_jenkinsfile_structure(tmp_path):
    text = generate("jenkins", tmp_path)
    code = re.sub(r"'(?:[^'\\]|\\.)*'", "''", re.sub(r"^\s*//.*$", "", text, flags=re.M))
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
    depth = 0
    for ch in code:  # never closes a block it did not open
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    stages = jenkins_stages(text)
    assert stages.index("build: first board of each CPU tune") < \
        stages.index("build: boards reusing a tune") < stages.index("device test") < \
        stages.index("release") < \
        stages.index("publish") < stages.index("rollout: canary") < \
        stages.index("approve field rollout") < stages.index("rollout: field")
    first = stages[stages.index("build: first board of each CPU tune") + 1:
                   stages.index("build: boards reusing a tune")]
    rest = stages[stages.index("build: boards reusing a tune") + 1: stages.index("device test")]
    tests = stages[stages.index("device test") + 1: stages.index("release")]
    assert first == [f"{b} release" for b in BOARDS]
    assert rest == [f"{b} debug" for b in BOARDS]
    assert tests == ["test qemux86-64", "test qemuarm64"]
    assert text.count("failFast false") == 3
    assert text.count("catchError(buildResult: 'FAILURE', stageResult: 'FAILURE')") == 18
    release = text[text.index("stage('release')"):text.index("stage('publish')")]
    assert "unstash 'test-qemux86-64-release'" in release  # the reports the release gate reads
    approve = text[text.index("stage('approve field rollout')"):text.index("stage('rollout: field')")]
    assert "input message:" in approve and "agent {" not in approve  # no executor held
    assert set(re.findall(r"credentials\('([^']+)'\)", text)) == {"MENDER_TENANT_TOKEN", "MENDER_PAT",
                                                                             "ARTIFACTORY_TOKEN"}
    assert set(re.findall(r"file\(credentialsId: '([^']+)'", text)) == {"ARTIFACT_SIGNING_PEM"}


def test_check_passes_on_current_and_fails_on_stale_file(tmp_path):
    for provider, name in FILES.items():
        proc = run_cli("ci", "check", str(DEMO), "--provider", provider,
                       "--file", str(GOLDEN / name))
        assert proc.returncode == 0, proc.stderr
    stale = tmp_path / "Jenkinsfile"
    stale.write_text((GOLDEN / FILES["jenkins"]).read_text().replace("raspberrypi5", "rpi5", 1))
    proc = run_cli("ci", "check", str(DEMO), "--provider", "jenkins", "--file", str(stale))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "stale" in proc.stderr
    assert proc.stderr.startswith(f"{stale}:")
    # the other provider's pipeline is not this one
    proc = run_cli("ci", "check", str(DEMO), "--provider", "gitlab",
                   "--file", str(GOLDEN / FILES["github"]))
    assert proc.returncode == 1


def test_bad_input_one_line_exit_2(tmp_path):
    proc = run_cli("ci", "generate", str(DEMO), "--provider", "github", "--variant", "nope")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nope" in proc.stderr
    proc = run_cli("ci", "generate", str(DEMO), "--provider", "github",
                   "--rollout-token", "MENDER_PAT")
    assert proc.returncode == 2 and "--rollout-token" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("ci", "check", str(DEMO), "--provider", "github",
                   "--file", str(tmp_path / "none.yml"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_boards_sharing_a_tune_wait_for_the_first_of_it():
    from buildctl.ci.plan import plan_pipeline
    from buildctl.manifest import load_product

    product = load_product(DEMO)
    boards = dict(product.boards)
    boards["raspberrypi5"] = dataclasses.replace(boards["raspberrypi5"], tune="cortexa72")
    product = dataclasses.replace(product, boards=boards)
    pipe = plan_pipeline(product, "img@sha256:" + "0" * 64, variants=["release"])
    by_id = {b.id: b for b in pipe.builds}
    assert by_id["build-raspberrypi5-release"].after == "build-raspberrypi4-64-release"
    assert by_id["build-raspberrypi4-64-release"].after is None
    ids = [b.id for b in pipe.builds]
    assert ids.index("build-raspberrypi5-release") > ids.index("build-olimex-imx8mp-evb-release")
    assert all(b.variant == "release" for b in pipe.builds)


def test_only_the_secret_names_the_manifest_references():
    from buildctl.ci.plan import plan_pipeline
    from buildctl.manifest import load_product
    from buildctl.secrets import SecretRef

    product = load_product(DEMO)
    mender = dataclasses.replace(product.mender, tenant_token=SecretRef.parse("env:OTHER_TENANT"),
                                 signing_key=None)
    pipe = plan_pipeline(dataclasses.replace(product, mender=mender), "img",
                         rollout_token="env:DEPLOY_TOKEN")
    assert [s.name for s in pipe.build_secrets] == ["OTHER_TENANT"]
    assert pipe.release_secrets == []
    assert [s.name for s in pipe.rollout_secrets] == ["DEPLOY_TOKEN"]


def groovy_lint() -> str:
    return skips.tool("npm-groovy-lint", "npm install -g npm-groovy-lint; needs Java")


@pytest.mark.slow
def test_jenkinsfile_parses_with_groovy_lint(tmp_path):
    """npm-groovy-lint parses the Groovy (CodeNarc, offline once installed); a broken copy
    fails, so the check is not vacuous."""
    tool = groovy_lint()
    good = tmp_path / "Jenkinsfile"
    good.write_text(generate("jenkins", tmp_path))
    bad = tmp_path / "Broken"
    bad.write_text(good.read_text().replace("failFast false", "failFast false {", 1))
    for path, ok in ((good, True), (bad, False)):
        proc = subprocess.run([tool, "--noserver", "--failon", "error", "--output", "txt",
                               path.name], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert (proc.returncode == 0) is ok, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("provider", sorted(FILES))
def test_main_branch_pushes_sstate_to_an_http_mirror_pull_requests_do_not(provider, tmp_path):
    from buildctl.ci.plan import plan_pipeline
    from buildctl.ci.render import render
    from buildctl.manifest import load_product

    product = load_product(DEMO)
    cache = dataclasses.replace(product.cache, sstate_mirrors=(
        "file://.* file:///srv/sstate/PATH",
        "file://.* https://cache.example.com/sstate/PATH;downloadfilename=PATH"))
    text = render(plan_pipeline(dataclasses.replace(product, cache=cache), "img:1"), provider,
                  generated_by="test")
    push = ('.venv/bin/buildctl cache push "$HOME"/.cache/buildctl/sstate '
            'https://cache.example.com/sstate')
    if provider == "github":
        jobs = yaml.safe_load(text)["jobs"]
        steps = [s for s in jobs["build-qemuarm64-debug"]["steps"] if "cache push" in s.get("run", "")]
        assert steps == [{"name": "push new sstate to the mirror",
                          "if": "github.ref == 'refs/heads/main'", "run": push}]
    elif provider == "gitlab":
        script = yaml.safe_load(text)["build-qemuarm64-debug"]["script"]
        assert script[-1] == f'if [ "$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH" ]; then {push}; fi'
        assert script[-2].startswith(".venv/bin/buildctl build ")
    else:
        assert text.count("if (env.BRANCH_NAME == 'main')") == 16
        assert text.count(push.replace("'", "\\'")) == 16
    if provider in SCHEMAS:
        path = tmp_path / "p.yml"
        path.write_text(text)
        proc = subprocess.run([check_jsonschema(), "--builtin-schema", SCHEMAS[provider],
                               str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def test_a_file_secret_outside_the_repository_is_refused(tmp_path):
    proc_product = tmp_path / "p.yml"
    text = DEMO.read_text().replace("file:../keys/artifact-signing.pem",
                                    "file:/var/secrets/signing.pem")
    text = text.replace("boards_dir: ../machines", f"boards_dir: {ROOT / 'machines'}")
    text = text.replace("    path: ..\n", f"    path: {ROOT}\n")
    proc_product.write_text(text)
    proc = run_cli("ci", "generate", str(proc_product), "--provider", "github")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "outside the repository" in proc.stderr


def test_device_tests_sit_between_build_and_release(tmp_path):
    """QEMU boards are tested on the runner before the release; the boards no test covers are
    named once per gated command, the emulated ones never."""
    jobs = yaml.safe_load(generate("github", tmp_path))["jobs"]
    for board in ("qemux86-64", "qemuarm64"):
        t = jobs[f"test-{board}-release"]
        assert t["needs"] == [f"build-{board}-release"]
        run = " ".join(s.get("run", "") for s in t["steps"])
        assert (f".venv/bin/buildctl test products/demo.yml --board {board} --variant release "
                f"--out out/demo --junit out/demo/{board}-release/devtest-junit.xml") in run
        assert "--lava" not in run
        down = [s["with"] for s in jobs["release"]["steps"]
                if s.get("uses", "").startswith("actions/download-artifact")]
        assert {"name": f"test-{board}-release", "path": f"out/demo/{board}-release"} in down
    assert not any(k.startswith("test-") and k.endswith("-debug") for k in jobs)
    untested = [b for b in BOARDS if not b.startswith("qemu")]
    flags = "".join(f" --untested-board {b}" for b in untested)
    for job in ("release", "publish", "rollout-canary", "rollout-field"):
        run = " ".join(s.get("run", "") for s in jobs[job]["steps"] if "buildctl " in s.get("run", ""))
        assert flags in run and "--untested-board qemu" not in run and "--untested " not in run
    gitlab = yaml.safe_load(generate("gitlab", tmp_path))
    assert gitlab["stages"] == ["build", "test", "release", "publish", "rollout"]
    t = gitlab["test-qemuarm64-release"]
    assert t["stage"] == "test" and t["needs"] == [{"job": "build-qemuarm64-release", "artifacts": True}]
    assert t["artifacts"]["reports"] == {"junit": "out/demo/qemuarm64-release/devtest-junit.xml"}
    assert {"job": "test-qemuarm64-release", "artifacts": True} in gitlab["release"]["needs"]


@pytest.mark.parametrize("provider", sorted(FILES))
def test_a_lava_lab_tests_the_real_boards(provider, tmp_path):
    text = generate(provider, tmp_path, "--lava", "https://lava.example.com", "--lava-images",
                    "https://files.example.com/ci")
    assert "--untested-board" not in text  # every board is tested now
    for board in BOARDS:
        want = (f"--board {board} --variant release --out out/demo --junit "
                f"out/demo/{board}-release/devtest-junit.xml")
        assert want in text
    lava = ("--lava https://lava.example.com --image-url https://files.example.com/ci/ "
            "--lava-token env:LAVA_TOKEN")
    assert text.count(lava) == len(BOARDS) - 2  # the real boards; QEMU boards stay on the runner
    if provider == "github":
        job = yaml.safe_load(text)["jobs"]["test-raspberrypi5-release"]
        assert job["env"] == {"LAVA_TOKEN": "${{ secrets.LAVA_TOKEN }}"}
    elif provider == "jenkins":
        assert "LAVA_TOKEN = credentials('LAVA_TOKEN')" in text
    if provider in SCHEMAS:
        path = tmp_path / "lava.yml"
        path.write_text(text)
        proc = subprocess.run([check_jsonschema(), "--builtin-schema", SCHEMAS[provider], str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
    proc = run_cli("ci", "generate", str(DEMO), "--provider", provider, "--lava",
                   "https://lava.example.com")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--lava and --lava-images go together" in proc.stderr
def test_the_push_records_the_hash_server_the_builds_use():
    """cache.hashserve_upstream (with auto) is the server whose unihashes name the objects: the
    main branch's push records it on the mirror (cache push --hashserv), so a mirror filled
    under another server is refused (tests/cache/test_mirror_marker.py)."""
    from buildctl.ci.plan import plan_pipeline
    from buildctl.ci.render import commands
    from buildctl.manifest import load_product

    product = load_product(DEMO)
    mirrors = ("file://.* https://cache.example.com/sstate/PATH;downloadfilename=PATH",)
    got = {}
    for hashserve, upstream in (("auto", "ws://HS.example.com:8686"), ("10.1.2.3:8686", None),
                                ("none", None)):
        cache = dataclasses.replace(product.cache, sstate_mirrors=mirrors, hashserve=hashserve,
                                    hashserve_upstream=upstream)
        got[hashserve] = commands(plan_pipeline(dataclasses.replace(product, cache=cache),
                                                "img:1"))["push"]
    base = '.venv/bin/buildctl cache push "$HOME"/.cache/buildctl/sstate https://cache.example.com/sstate'
    assert got == {"auto": base + " --hashserv hs.example.com:8686",
                   "10.1.2.3:8686": base + " --hashserv 10.1.2.3:8686", "none": base}
