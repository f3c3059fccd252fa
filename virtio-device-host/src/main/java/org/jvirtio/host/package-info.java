/**
 * The framework's threads: the {@link org.jvirtio.host.QueueEngine} every device's queues run in,
 * the {@link org.jvirtio.host.QueueHost}s that own threads (thread per queue, or
 * {@link org.jvirtio.host.IoThreads} epoll event loops), and {@link org.jvirtio.host.DeviceQueues},
 * which transports use to start and stop a device's queues.
 */
package org.jvirtio.host;
