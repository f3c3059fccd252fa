/** The virtio-blk data plane: disk I/O through io_uring ({@link org.jvirtio.blk.dataplane.IoUring}, {@link org.jvirtio.blk.dataplane.UringIoFactory}) for queues on the epoll I/O threads ({@link org.jvirtio.host.IoThreads}). */
package org.jvirtio.blk.dataplane;
