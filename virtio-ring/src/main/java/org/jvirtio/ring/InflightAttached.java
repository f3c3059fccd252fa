package org.jvirtio.ring;

/**
 * What a queue found when it took over its part of the vhost-user inflight region
 * ({@link RingQueue#attachInflight}).
 *
 * @param resubmitted   requests a predecessor left in flight, served again before the ring's new ones
 * @param inconsistency why the region was refused and started afresh (nothing resubmitted), or null
 * @param note          what else the caller should log (a packed ring's state taken from the
 *                      region over the front-end's), or null
 */
public record InflightAttached(int resubmitted, String inconsistency, String note) {
}
