package org.example.doorbell;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.linux.ErrnoException;

/**
 * A device that waits for the world: an entropy device (id 4, so QEMU's vhost-user-rng-pci
 * attaches it and the guest reads it as /dev/hwrng) whose queue answers only when someone rings
 * the bell ({@link #ring()}, from any thread; the command rings it on SIGHUP). Each ring fills
 * one buffer the driver offered with the message. Until then the device turns the driver's
 * buffers away ({@link QueueHandler#NOT_NOW}): they stay in the driver's ring, nothing is held,
 * and a stop (a VM paused, a migration) does not wait for the bell.
 */
public final class DoorbellDevice extends AbstractVirtioDevice {
    private final byte[] message;
    /** Rings not yet delivered. */
    private final AtomicInteger rings = new AtomicInteger();
    /** Signalled on each ring; the queue's thread watches it as the handler's completion fd. Lives as long as the device. */
    private final EventFd rung;

    public DoorbellDevice(String message) throws ErrnoException {
        super(4);
        this.message = message.getBytes(StandardCharsets.UTF_8);
        this.rung = EventFd.create(true);
    }

    /** Rings the bell once: one more buffer gets the message. Any thread. */
    public void ring() {
        rings.incrementAndGet();
        rung.signal();
    }

    @Override
    public QueueHandler openQueue(QueueBinding queue) {
        return new QueueHandler() {
            private QueueCompletions completions;

            @Override
            public void open(QueueCompletions c) {
                completions = c;
            }

            @Override
            public int start(DescriptorChain chain, int slot) {
                if (chain.writableLength() < message.length) {
                    return 0; // too small for the message: answered with nothing
                }
                if (rings.getAndUpdate(n -> n > 0 ? n - 1 : 0) == 0) {
                    return NOT_NOW; // nobody rang: back into the driver's ring, write nothing
                }
                chain.writer().write(message);
                return message.length;
            }

            @Override
            public int completionFd() {
                return rung.fd();
            }

            /** The bell rang (the queue's thread has read the eventfd): take the buffers again. */
            @Override
            public void reap() {
                completions.resume();
            }
        };
    }
}
