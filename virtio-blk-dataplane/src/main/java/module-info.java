/** The virtio-blk data plane: I/O threads on Netty epoll event loops, disk I/O through io_uring (FFM). */
module org.jvirtio.blk.dataplane {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;
    requires transitive org.jvirtio.blk;
    requires transitive org.jvirtio.host;
    requires org.slf4j;
    requires io.netty.common;
    requires io.netty.transport;
    requires io.netty.transport.unix.common;
    requires io.netty.transport.classes.epoll;

    exports org.jvirtio.blk.dataplane;
}
