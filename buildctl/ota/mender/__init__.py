"""Mender artifact format version 3: streaming reader/verifier, writer, signer, release gate.

Independent of the command line. Entry points:
``read_artifact`` (reader), ``write_artifact`` + ``rootfs_payload``/``module_payload``/
``bootstrap_payload`` (writer), ``sign_artifact``, ``load_private_key``/``load_public_key``, and
``gate.check_artifacts``.
"""
from buildctl.ota.mender.compression import Compression
from buildctl.ota.mender.errors import ArtifactError, SigningKeyError
from buildctl.ota.mender.keys import PrivateKey, PublicKey, load_private_key, load_public_key
from buildctl.ota.mender.model import ArtifactInfo, Augment, DataFile, Payload
from buildctl.ota.mender.reader import Limits, read_artifact
from buildctl.ota.mender.sign import sign_artifact
from buildctl.ota.mender.writer import (ArtifactSpec, DataSource, PayloadSpec, bootstrap_payload,
                                        module_payload, rootfs_payload, write_artifact)

__all__ = ["ArtifactError", "ArtifactInfo", "ArtifactSpec", "Augment", "Compression", "DataFile",
           "DataSource", "Limits", "Payload", "PayloadSpec", "PrivateKey", "PublicKey",
           "SigningKeyError", "bootstrap_payload", "load_private_key", "load_public_key", "module_payload",
           "read_artifact", "rootfs_payload", "sign_artifact", "write_artifact"]
