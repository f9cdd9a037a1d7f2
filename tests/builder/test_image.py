"""Builder image inputs: the tag follows the inputs, the mirror comes from apt's sources."""
from __future__ import annotations

import shutil

import pytest

from buildctl.builder.image import CONTAINERS_DIR, ImageSpec, debian_mirror
from buildctl.errors import UserError


def test_tag_changes_with_any_input(tmp_path):
    d = tmp_path / "containers"
    shutil.copytree(CONTAINERS_DIR, d)
    spec = ImageSpec(profile="minimal", containers_dir=d, site_ca_dir=tmp_path / "ca")
    tag = spec.tag()
    assert tag.startswith("buildctl-builder:minimal-") and tag == spec.tag()
    assert ImageSpec(profile="scarthgap", containers_dir=d, site_ca_dir=tmp_path / "ca").tag() != tag
    assert ImageSpec(profile="minimal", containers_dir=d, kas_version="5.4",
                     site_ca_dir=tmp_path / "ca").tag() != tag
    with open(d / "packages" / "minimal.txt", "a") as fh:
        fh.write("strace\n")
    assert spec.tag() != tag
    tag2 = spec.tag()
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "site.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert spec.tag() != tag2


def test_both_image_paths_share_one_dockerfile_and_package_lists():
    text = (CONTAINERS_DIR / "Dockerfile").read_text()
    assert "ARG BASE=debian:bookworm-slim@sha256:" in text  # registry users: pinned by digest
    assert "kas==${KAS_VERSION}" in text and "useradd" in text and "locale-gen" in text
    pkgs = (CONTAINERS_DIR / "packages" / "scarthgap.txt").read_text().split()
    for p in ("gawk", "chrpath", "diffstat", "zstd", "lz4", "cpio", "file", "locales"):
        assert p in pkgs


def test_mirror_from_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "a.sources").write_text(
        "Types: deb\n# comment\nURIs: http://mirror.example.org/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example.org/debian-security\nSuites: bookworm-security\n")
    assert debian_mirror((tmp_path,)) == "http://mirror.example.org/debian"
    one = tmp_path / "sources.list"
    one.write_text("# deb http://old/debian bookworm main\n"
                   "deb [signed-by=/k.gpg] http://one.example.org/debian bookworm main\n")
    assert debian_mirror((one,)) == "http://one.example.org/debian"
    with pytest.raises(UserError, match="no Debian mirror for trixie"):
        debian_mirror((one,), suite="trixie")
