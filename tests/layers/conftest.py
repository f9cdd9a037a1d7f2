"""Fixture repositories for the layer tests (built once per test module where possible)."""
from __future__ import annotations

import pytest

from buildctl.layers.gitfs import GitFS
from tests.helpers.fixture_layers import make_core_repo


@pytest.fixture
def fs():
    f = GitFS()
    yield f
    f.close()


@pytest.fixture(scope="module")
def core_repo(tmp_path_factory):
    """(path, commit) of an OE-core-like repository, series scarthgap, layer in meta/."""
    return make_core_repo(tmp_path_factory.mktemp("core"))
