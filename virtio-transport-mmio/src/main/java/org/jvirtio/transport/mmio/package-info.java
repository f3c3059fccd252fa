/**
 * The virtio-mmio transport (VIRTIO 1.3, 4.2): {@link org.jvirtio.transport.mmio.MmioTransport}
 * puts any device behind a version 2 register window that a VMM's MMIO exit handler calls.
 */
package org.jvirtio.transport.mmio;
