"""Release: a build's deploy outputs turned into one verifiable bundle.

Steps (``pipeline.BOARD_STEPS`` per board, then the bundle steps), one module each:
``collect`` (promised outputs under Yocto's stable names) -> ``sign`` (every .mender with the
product's key, on the host: the private key never enters the build container) -> ``gate``
(device types, artifact name, signature) -> ``sbom/`` (OE's SPDX 2.2/3.0.1 in; SPDX 2.3,
SPDX 3.0.1, CycloneDX 1.6 out) -> ``cve`` + ``vex`` -> ``bundle`` (release.json, SHA256SUMS)
-> ``provenance`` (in-toto/SLSA statement in a DSSE envelope, ``dsse``). ``verify``, ``diff``
and ``cves_report`` read finished bundles; ``api`` builds a ReleaseSpec from a product.
"""
