/** The virtio-blk data plane: epoll event loops and io_uring. Not implemented yet: only the module shape exists. */
module org.jvirtio.blk.dataplane {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;

    // exports org.jvirtio.blk.dataplane once it holds code (javac refuses to export a package with no class)
}
