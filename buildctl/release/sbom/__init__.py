"""SBOMs: read what OE-core wrote (SPDX 2.2 tarball, SPDX 3.0.1 JSON-LD), write SPDX 2.3,
SPDX 3.0.1 and CycloneDX 1.6 documents that also list buildctl's own inputs."""
