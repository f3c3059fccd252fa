/** The virtio-blk device model (VIRTIO 1.3, 5.2). Not implemented yet: only the module shape exists. */
package org.jvirtio.blk;
