/**
 * virtio-blk's data plane: disk I/O through io_uring (own FFM binding; a thread pool where io_uring
 * is not allowed), straight into guest memory on the queue's thread, and the blk device command
 * ({@code bin/vhost-user blk}) that composes the disk with it. A device module: it sees virtio-api,
 * virtio-blk and the device-command SPI only; the epoll loops it runs on are the framework's.
 */
module org.jvirtio.blk.dataplane {
    requires transitive org.jvirtio.api;
    requires transitive org.jvirtio.blk;
    requires org.jvirtio.blk.rbd;
    requires org.jvirtio.command;
    requires org.slf4j;

    exports org.jvirtio.blk.dataplane;
    opens org.jvirtio.blk.dataplane to com.google.guice;

    provides org.jvirtio.command.DeviceCommand with org.jvirtio.blk.dataplane.BlkCommand;
}
