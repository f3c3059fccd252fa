/**
 * The core of jvirtio: guest memory ({@link org.jvirtio.api.GuestMemory}), the device SPI
 * ({@link org.jvirtio.api.VirtioDevice}), the device's view of a queue
 * ({@link org.jvirtio.api.Virtqueue}, {@link org.jvirtio.api.DescriptorChain}), feature bits,
 * device status and eventfds. Transports and devices depend on this module; it depends on
 * nothing but the JDK (and SLF4J's API).
 */
package org.jvirtio.api;
