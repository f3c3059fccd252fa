/** The virtio-mmio transport (VIRTIO 1.3, 4.2). Not implemented yet: only the module shape exists. */
package org.jvirtio.transport.mmio;
