SUMMARY = "Example buildctl service: a heartbeat naming the running Mender artifact"
DESCRIPTION = "A tiny C daemon, started by systemd, that logs which Mender \
artifact the device runs. It shows an application recipe in a buildctl product."
HOMEPAGE = "https://example.org/buildctl"
SECTION = "examples"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b71b0800d403e77880e027c4cbd26d6"

# The sources are a directory named like ${BP}: the fetcher unpacks it to
# ${WORKDIR}/${BP} on scarthgap and ${UNPACKDIR}/${BP} on wrynose, which is
# the default S in both series, so S need not be set.
SRC_URI = "file://${BP}"

inherit systemd

SYSTEMD_SERVICE:${PN} = "hello-buildctl.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_compile() {
    oe_runmake
}

do_install() {
    oe_runmake install DESTDIR=${D} BINDIR=${bindir}
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/hello-buildctl.service ${D}${systemd_system_unitdir}/hello-buildctl.service
}
