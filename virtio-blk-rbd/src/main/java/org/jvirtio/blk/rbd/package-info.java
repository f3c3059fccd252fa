/** RBD images as virtio-blk disks: {@link org.jvirtio.blk.rbd.RbdBackend}. */
package org.jvirtio.blk.rbd;
