/**
 * The one ring module every transport and device shares: the split virtqueue, device side
 * ({@link org.jvirtio.ring.SplitQueue}) and driver side ({@link org.jvirtio.ring.SplitQueueDriver}),
 * its memory layout ({@link org.jvirtio.ring.SplitRingLayout}) and the named ways a guest can
 * break it ({@link org.jvirtio.ring.RingViolation}).
 */
package org.jvirtio.ring;
