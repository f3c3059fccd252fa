/** The virtio-mmio transport (VIRTIO 1.3, 4.2): a register window a VMM embeds. */
module org.jvirtio.transport.mmio {
    requires transitive org.jvirtio.api;
    requires transitive org.jvirtio.ring;
    requires transitive org.jvirtio.host;
    requires org.slf4j;

    exports org.jvirtio.transport.mmio;
}
