SUMMARY = "Mender update module: root filesystem updates from a binary delta"
DESCRIPTION = "Installs the rootfs-delta update module. It applies the VCDIFF \
delta of a `buildctl release delta` artifact to the inactive A/B partition, \
using the running root filesystem as the source, checks the source's and the \
result's sha256 before switching the bootloader, and leaves the inactive \
partition untouched when the delta does not fit the device."
HOMEPAGE = "https://example.org/buildctl"
SECTION = "mender"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

SRC_URI = "file://rootfs-delta"

# the script only: nothing to unpack into a source tree, build or package per machine
S = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"
inherit allarch

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${datadir}/mender/modules/v3
    install -m 0755 ${S}/rootfs-delta ${D}${datadir}/mender/modules/v3/rootfs-delta
}

FILES:${PN} = "${datadir}/mender/modules/v3/rootfs-delta"
# bash: pipefail; xdelta3: the decoder (meta-oe); coreutils/util-linux-blockdev: head -c,
# sha256sum, stat, dd conv=fsync and blockdev --getsize64 as the script uses them
RDEPENDS:${PN} = "bash xdelta3 coreutils util-linux-blockdev"
