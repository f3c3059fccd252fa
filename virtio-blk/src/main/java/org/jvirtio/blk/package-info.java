/**
 * The virtio-blk device model (VIRTIO 1.3, 5.2): {@link org.jvirtio.blk.VirtioBlkDevice},
 * request parsing through the chain cursor, and the null, RAM and file backends.
 */
package org.jvirtio.blk;
