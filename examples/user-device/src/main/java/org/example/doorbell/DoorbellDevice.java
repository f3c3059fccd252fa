package org.example.doorbell;

import java.nio.charset.StandardCharsets;

import jakarta.inject.Inject;
import jakarta.inject.Named;
import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.Inbox;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.linux.ErrnoException;

/**
 * A device that waits for the world: an entropy device (id 4, so QEMU's vhost-user-rng-pci
 * attaches it and the guest reads it as /dev/hwrng) whose queue answers only when someone rings
 * the bell ({@link #ring()}, from any thread; the command rings it on SIGHUP). Each ring fills
 * one buffer the driver offered with the message. Until then the driver's buffers stay in its
 * ring (the {@link Inbox} turns them away): nothing is held, and a stop (a VM paused, a
 * migration) does not wait for the bell.
 */
public final class DoorbellDevice extends AbstractVirtioDevice {
    private final byte[] message;
    /** Rings not yet delivered (at most 64; more are dropped and counted). */
    private final Inbox<byte[]> rings = new Inbox<>(64, Inbox.WhenFull.DROP_NEWEST);

    @Inject
    public DoorbellDevice(@Named("message") String message) throws ErrnoException {
        super(4);
        this.message = message.getBytes(StandardCharsets.UTF_8);
    }

    /** Rings the bell once: one more buffer gets the message. Any thread. */
    public void ring() {
        rings.offer(message);
    }

    @Override
    public QueueHandler openQueue(QueueBinding queue) {
        return rings.handler((chain, m) -> {
            if (chain.writableLength() < m.length) {
                return 0; // too small for the message: answered with nothing
            }
            chain.writer().write(m);
            return m.length;
        });
    }
}
