"""Deploy outputs of the stand-in BitBake, named and linked the way OE-core writes them.

Runs inside the builder container's python3: standard library only. For an image recipe,
OE-core's image classes write into DEPLOY_DIR_IMAGE:
- ``${IMAGE_NAME}.<type>`` for every type of IMAGE_FSTYPES, and the symlink
  ``${IMAGE_LINK_NAME}.<type>`` to it (IMAGE_LINK_NAME is IMAGE_NAME without the version
  suffix; meta-mender empties IMAGE_NAME_SUFFIX, the ``.rootfs`` part, on Mender boards);
- ``${IMAGE_NAME}.manifest`` (one ``<package> <arch> <version>`` line per installed package)
  and its ``${IMAGE_LINK_NAME}.manifest`` link;
- for the ``mender`` type (meta-mender's mender-artifactimg), a Mender artifact (format 3,
  rootfs-image payload) of the ``${ARTIFACTIMG_FSTYPE}`` image, named MENDER_ARTIFACT_NAME and
  compatible with MENDER_DEVICE_TYPES_COMPATIBLE.
Disk images (sdimg, uefiimg, wic, ...) and bmap files are small placeholders with the real
names: the tests check names, links and what buildctl does with them, not their bytes.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

ARTIFACTIMG_FSTYPE = "ext4"  # meta-mender's default filesystem inside the .mender


def _replace(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _link(deploy_dir, link_name, target):
    link = os.path.join(deploy_dir, link_name)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)


def _tar(members, mtime):
    """An uncompressed ustar archive of (name, bytes) members, owner 0/0, one mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def mender_artifact(rootfs_name, rootfs, artifact_name, device_types, mtime=0):
    """A Mender artifact (format 3, gzip) with one rootfs-image payload, as bytes."""
    checksum = hashlib.sha256(rootfs).hexdigest()
    header_info = {"payloads": [{"type": "rootfs-image"}],
                   "artifact_provides": {"artifact_name": artifact_name},
                   "artifact_depends": {"device_type": list(device_types)}}
    type_info = {"type": "rootfs-image",
                 "artifact_provides": {"rootfs-image.checksum": checksum,
                                       "rootfs-image.version": artifact_name},
                 "clears_artifact_provides": ["artifact_group", "rootfs_image_checksum",
                                              "rootfs-image.*"]}
    header = gzip.compress(_tar([("header-info", _json(header_info)),
                                 ("headers/0000/type-info", _json(type_info)),
                                 ("headers/0000/meta-data", b"")], mtime), mtime=mtime)
    data = gzip.compress(_tar([(rootfs_name, rootfs)], mtime), mtime=mtime)
    version = b'{"format":"mender","version":3}'
    manifest = (f"{checksum}  data/0000/{rootfs_name}\n"
                f"{hashlib.sha256(header).hexdigest()}  header.tar.gz\n"
                f"{hashlib.sha256(version).hexdigest()}  version\n").encode()
    return _tar([("version", version), ("manifest", manifest), ("header.tar.gz", header),
                 ("data/0000.tar.gz", data)], mtime)


def _image_bytes(fstype, image, machine, d):
    head = f"{fstype} image of {image} for {machine}\n".encode()
    return head + b"\0" * (4096 - len(head)) if len(head) < 4096 else head


def write_manifest(deploy_dir, image_name, link_name, packages):
    """The image manifest: ``<package> <arch> <version>`` per installed package, sorted."""
    name = f"{image_name}.manifest"
    lines = "".join(f"{p} {arch} {ver}\n" for p, arch, ver in sorted(packages))
    _replace(os.path.join(deploy_dir, name), lines.encode())
    _link(deploy_dir, f"{link_name}.manifest", name)
    return name


def write_deploy(deploy_dir, machine, image, image_name, fstypes, d, link_name=None,
                 packages=(), skip=()):
    """Write the outputs of image recipe ``image`` for ``machine`` into deploy_dir.

    image_name / link_name: IMAGE_NAME and IMAGE_LINK_NAME of the image recipe; fstypes:
    IMAGE_FSTYPES; d: the configuration's variables (anything with .get); packages:
    (name, arch, version) installed; skip: types not to write (a test knob: a build that
    "forgot" an output). Returns the names written (files, not links).
    """
    os.makedirs(deploy_dir, exist_ok=True)
    link_name = link_name or image_name
    mtime = int(d.get("REPRODUCIBLE_TIMESTAMP_ROOTFS") or 0)
    written = []
    wanted = list(dict.fromkeys(fstypes))
    if "mender" in wanted and ARTIFACTIMG_FSTYPE not in wanted:
        wanted.insert(0, ARTIFACTIMG_FSTYPE)  # IMAGE_TYPEDEP:mender
    for fstype in wanted:
        if fstype in skip:
            continue
        name = f"{image_name}.{fstype}"
        if fstype == "mender":
            rootfs_name = f"{link_name}.{ARTIFACTIMG_FSTYPE}"
            with open(os.path.join(deploy_dir, f"{image_name}.{ARTIFACTIMG_FSTYPE}"), "rb") as fh:
                rootfs = fh.read()
            devices = (d.get("MENDER_DEVICE_TYPES_COMPATIBLE") or machine).split()
            data = mender_artifact(rootfs_name, rootfs, d.get("MENDER_ARTIFACT_NAME") or "",
                                   devices, mtime)
        else:
            data = _image_bytes(fstype, image, machine, d)
        _replace(os.path.join(deploy_dir, name), data)
        _link(deploy_dir, f"{link_name}.{fstype}", name)
        written.append(name)
    written.append(write_manifest(deploy_dir, image_name, link_name, packages))
    return written
