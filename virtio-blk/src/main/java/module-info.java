/** The virtio-blk device model (VIRTIO 1.3, 5.2). Not implemented yet: only the module shape exists. */
module org.jvirtio.blk {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;

    // exports org.jvirtio.blk once it holds code (javac refuses to export a package with no class)
}
