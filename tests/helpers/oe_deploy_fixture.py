"""OE-shaped deploy outputs for the release tests: the stand-in BitBake's own writer
(tests/builder/fixture_files/oe_deploy.py, standard library only), loaded by path."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "builder" / "fixture_files" / "oe_deploy.py"
_spec = importlib.util.spec_from_file_location("oe_deploy", _PATH)
oe_deploy = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("oe_deploy", oe_deploy)
_spec.loader.exec_module(oe_deploy)

Cve = oe_deploy.Cve
Pkg = oe_deploy.Pkg
DeployFixture = oe_deploy.DeployFixture
default_packages = oe_deploy.default_packages
write_deploy = oe_deploy.write_release_outputs
spdx22_documents = oe_deploy.spdx22_documents
spdx22_tar = oe_deploy.spdx22_tar
spdx3_document = oe_deploy.spdx3_document
cve_check_manifest = oe_deploy.cve_check_manifest
write_zstd = oe_deploy.write_zstd
