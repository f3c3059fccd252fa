/** The virtio-blk data plane: epoll I/O threads ({@link org.jvirtio.blk.dataplane.IoThreads}) and io_uring ({@link org.jvirtio.blk.dataplane.IoUring}). */
package org.jvirtio.blk.dataplane;
