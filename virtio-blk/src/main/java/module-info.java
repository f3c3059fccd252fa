/** The virtio-blk device model (VIRTIO 1.3, 5.2) and its block backends. */
module org.jvirtio.blk {
    requires transitive org.jvirtio.api;
    requires org.slf4j;

    exports org.jvirtio.blk;
}
