"""Validate our SBOMs with the official libraries, offline: spdx-tools (SPDX 2.x),
spdx-python-model (SPDX 3.0.1: typed load, every reference resolved, re-serialisable) and
cyclonedx-python-lib (CycloneDX JSON schema, strict). Each returns a list of problems
(empty: valid)."""
from __future__ import annotations

import io
import json
from pathlib import Path


def validate_spdx2(path: Path) -> list[str]:
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    try:
        doc = parse_file(str(path))
    except SPDXParsingError as exc:
        return [f"does not parse: {m}" for m in exc.get_messages()][:20]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"does not parse: {exc}"]
    return [m.validation_message for m in validate_full_spdx_document(doc)]


def validate_spdx3(path: Path) -> list[str]:
    from spdx_python_model import v3_0_1 as model

    objset = model.SHACLObjectSet()
    try:
        with open(path, "rb") as fh:
            model.JSONLDDeserializer().read(fh, objset)
    except (ValueError, TypeError, KeyError) as exc:
        return [f"does not load as SPDX 3.0.1: {exc}"]
    missing = objset.link()
    problems = [f"reference to an element not in the document: {m}" for m in sorted(missing)]
    try:
        model.JSONLDSerializer().write(objset, io.BytesIO())
    except (ValueError, TypeError) as exc:
        problems.append(f"does not serialise: {exc}")
    return problems


def validate_cyclonedx(path: Path) -> list[str]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = Path(path).read_text()
    try:
        spec = json.loads(text).get("specVersion", "1.6")
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    version = {"1.4": SchemaVersion.V1_4, "1.5": SchemaVersion.V1_5,
               "1.6": SchemaVersion.V1_6}.get(spec)
    if version is None:
        return [f"specVersion {spec!r} is not one buildctl writes"]
    errors = JsonStrictValidator(version).validate_str(text, all_errors=True)
    return [str(getattr(e, "data", e)).splitlines()[0] for e in (errors or [])]


VALIDATORS = {"spdx-2.3": validate_spdx2, "spdx-3.0.1": validate_spdx3,
              "cyclonedx-1.6": validate_cyclonedx, "cyclonedx-vex-1.6": validate_cyclonedx}
