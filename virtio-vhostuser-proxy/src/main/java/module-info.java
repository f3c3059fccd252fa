/**
 * An MMIO device whose rings an external vhost-user backend serves ({@code VhostUserProxy}): a
 * VMM that embeds the MMIO transport reaches qemu-storage-daemon or {@code bin/vhost-user}. The
 * one module that depends on both transports; neither transport depends on the other.
 */
module org.jvirtio.proxy {
    requires transitive org.jvirtio.api;
    requires org.jvirtio.ring;
    requires transitive org.jvirtio.host;
    requires transitive org.jvirtio.transport.mmio;
    requires org.jvirtio.transport.vhostuser;
    requires org.slf4j;

    exports org.jvirtio.proxy;
}
