package org.jvirtio.api;

/**
 * One running queue handed to a device by a transport.
 *
 * @param index the queue index
 * @param queue the device side of the ring, already validated and activated
 * @param kick  where the driver's notifications arrive; null when the transport has none and
 *              the device must poll the ring (vhost-user's VHOST_USER_VRING_NOFD_MASK)
 * @param call  how to interrupt the driver for used buffers
 */
public record QueueBinding(int index, Virtqueue queue, EventFd kick, Interrupt call) {
}
