package org.jvirtio.net;

/**
 * A step of a port's forwarding pipeline: it sees every frame the port sends, after the switch's
 * own checks and before the frame is forwarded, and lets it pass or drops it; it may rewrite the
 * frame's Ethernet addresses (the copy every receiver gets; the sender's buffer is never written).
 * Bound with Guice for a port (a {@code Multibinder<FrameStage>}: {@link NetModule#stages}), in
 * the order bound, or for the port's whole switch ({@link NetModule#switchStages}: every port's
 * frames, after the port's own stages). Two come with jvirtio: {@link AntiSpoofing} and {@link RateLimitStage}.
 *
 * <pre>{@code
 * // in your DeviceCommand's modules():
 * List.of(new NetModule(port, options), b -> NetModule.stages(b).addBinding().toInstance(frame ->
 *         frame.etherType() != 0x86dd));   // this port sends no IPv6
 * }</pre>
 *
 * <p>Called on the sending port's transmit threads (one per queue pair: keep shared state
 * thread-safe), once per frame; it must not block. A drop is counted on the port
 * ({@link SwitchPort#txDropped()}).
 */
@FunctionalInterface
public interface FrameStage {
    /** @return true to let the frame go on, false to drop it */
    boolean accept(SwitchFrame frame);
}
