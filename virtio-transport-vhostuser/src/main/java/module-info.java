/** The vhost-user transport (QEMU docs/interop/vhost-user.rst). Not implemented yet: only the module shape exists. */
module org.jvirtio.transport.vhostuser {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;

    // exports org.jvirtio.transport.vhostuser once it holds code (javac refuses to export a package with no class)
}
