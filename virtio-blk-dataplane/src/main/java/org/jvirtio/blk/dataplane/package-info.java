/** The virtio-blk data plane: epoll event loops and io_uring. Not implemented yet: only the module shape exists. */
package org.jvirtio.blk.dataplane;
