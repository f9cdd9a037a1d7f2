"""Deploy outputs of the stand-in BitBake, named and linked the way OE-core writes them.

Runs inside the builder container's python3: standard library only. An image recipe deploys
``${IMAGE_NAME}.<type>`` for every type of IMAGE_FSTYPES into DEPLOY_DIR_IMAGE, plus a symlink
``${IMAGE_LINK_NAME}.<type>`` to it (IMAGE_LINK_NAME is IMAGE_NAME without the version suffix),
and the same pair for the image manifest (``.manifest``).
"""
import os


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


def link_name_of(image_name):
    """IMAGE_LINK_NAME from IMAGE_NAME: the version suffix (``-<DATETIME>``) dropped."""
    head, sep, tail = image_name.rpartition("-")
    return head if sep and tail.isdigit() else image_name


def write_deploy(deploy_dir, machine, image, image_name, fstypes, d):
    """Write the image files of ``image`` for ``machine`` into deploy_dir; return their names.

    d: the configuration's variables (a dict, or anything with .get).
    """
    os.makedirs(deploy_dir, exist_ok=True)
    link_name = link_name_of(image_name)
    written = []
    for fstype in fstypes:
        name = f"{image_name}.{fstype}"
        _replace(os.path.join(deploy_dir, name),
                 f"{image} for {machine}, SOURCE_DATE_EPOCH={d.get('SOURCE_DATE_EPOCH')}\n"
                 .encode())
        _link(deploy_dir, f"{link_name}.{fstype}", name)
        written.append(name)
    return written
