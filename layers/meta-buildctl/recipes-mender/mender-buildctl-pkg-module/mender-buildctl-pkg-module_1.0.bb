SUMMARY = "Mender update module for application packages (ipk, deb or rpm), with rollback"
DESCRIPTION = "Installs the package files of a module-image artifact written by \
`buildctl release apps` with the image's package manager, and rolls the packages back \
(database and files) when the installation or a post-install script fails. Installed under \
the name of the image's package type, the artifact's payload type."
HOMEPAGE = "https://example.org/buildctl"
SECTION = "mender"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

# A directory named like ${BP}: the default S on scarthgap and wrynose alike.
SRC_URI = "file://${BP}"

inherit allarch

# IMAGE_PKGTYPE is the first of PACKAGE_CLASSES: the package manager images get with the
# package-management feature, and the update module name `buildctl release apps` writes.
MODULE_NAME = "${IMAGE_PKGTYPE}"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${datadir}/mender/modules/v3
    install -m 0755 ${S}/package-module ${D}${datadir}/mender/modules/v3/${MODULE_NAME}
}

FILES:${PN} = "${datadir}/mender/modules/v3/${MODULE_NAME}"
