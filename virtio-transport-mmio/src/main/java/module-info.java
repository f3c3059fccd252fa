/** The virtio-mmio transport (VIRTIO 1.3, 4.2). Not implemented yet: only the module shape exists. */
module org.jvirtio.transport.mmio {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;

    // exports org.jvirtio.transport.mmio once it holds code (javac refuses to export a package with no class)
}
