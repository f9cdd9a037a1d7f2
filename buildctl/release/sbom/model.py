"""What an image ships, independent of the SBOM format it was read from or is written to."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Component:
    """One binary package installed in the image."""

    name: str
    version: str = ""
    license: str = "NOASSERTION"  # SPDX licence expression (OE's declared licence)
    recipe: str = ""
    purl: str | None = None  # only when Yocto wrote one (SPDX 3: software_packageUrl)
    cpes: tuple[str, ...] = ()
    homepage: str | None = None
    summary: str | None = None
    sources: tuple[tuple[str, str], ...] = ()  # (download location, sha256 or "")
    depends: tuple[str, ...] = ()  # runtime dependencies: other components' names


@dataclass
class Input:
    """Something we built with that is not in the image: a layer repository, the builder
    image, buildctl itself."""

    kind: str  # layer-repo | builder-image | tool
    name: str
    version: str  # commit, image digest, tool version
    url: str | None = None


@dataclass
class LicenseText:
    license_id: str  # LicenseRef-...
    name: str
    text: str


@dataclass
class ImageSbom:
    image: str  # image recipe (PN), e.g. core-image-minimal
    image_version: str
    image_name: str  # IMAGE_NAME (or IMAGE_LINK_NAME)
    source_format: str  # spdx-2.2 | spdx-3.0.1
    components: dict[str, Component] = field(default_factory=dict)
    license_texts: dict[str, LicenseText] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)  # what we changed so validators accept it
    image_files: list[tuple[str, str]] = field(default_factory=list)  # (bundle path, sha256)

    def repair(self, note: str) -> None:
        if note not in self.repairs:
            self.repairs.append(note)


@dataclass
class SbomContext:
    """Who/what/when for the documents we write (deterministic: no wall clock)."""

    product: str
    version: str
    board: str
    variant: str
    created: str  # ISO time from SOURCE_DATE_EPOCH
    inputs: list[Input] = field(default_factory=list)
    tool_version: str = ""

    @property
    def doc_name(self) -> str:
        return f"{self.product}-{self.version}-{self.board}-{self.variant}"
