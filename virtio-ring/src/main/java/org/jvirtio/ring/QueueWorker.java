package org.jvirtio.ring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.Virtqueue;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A thread that serves one queue for a device whose requests complete synchronously (an entropy
 * source, a test device, a RAM disk): wait for a kick, pop every chain, hand each to the
 * device's {@link ChainHandler}, publish once per batch, interrupt only when the driver wants
 * it, re-enable notifications and re-check before sleeping.
 *
 * <p>Devices with asynchronous I/O use their own event loops (virtio-blk-dataplane); this is
 * the simple, correct default. {@link #stop()} returns only when the thread has ended, so
 * nothing is in flight afterwards.
 */
public final class QueueWorker {
    private static final Logger LOG = LoggerFactory.getLogger(QueueWorker.class);
    /** How often a queue without a kick eventfd (vhost-user NOFD) is polled. */
    private static final int POLL_MILLIS = 1;
    private static final int BATCH = 64;

    /** Serves one chain; returns the number of bytes written into its writable buffers. */
    @FunctionalInterface
    public interface ChainHandler {
        int handle(DescriptorChain chain);
    }

    private final QueueBinding binding;
    private final ChainHandler handler;
    private final EventFd stopFd;
    private final Thread thread;
    private volatile boolean stopping;

    private QueueWorker(QueueBinding binding, ChainHandler handler, String name) throws ErrnoException {
        this.binding = binding;
        this.handler = handler;
        this.stopFd = EventFd.create(true);
        this.thread = Thread.ofPlatform().name(name).daemon().unstarted(this::run);
    }

    /** Starts a worker thread for {@code binding}. */
    public static QueueWorker start(QueueBinding binding, ChainHandler handler, String name) throws ErrnoException {
        QueueWorker w = new QueueWorker(binding, handler, name);
        w.thread.start();
        return w;
    }

    /** Stops the thread and waits for it; idempotent. */
    public void stop() {
        stopping = true;
        stopAndJoin(thread, stopFd);
    }

    /**
     * Signals {@code stopFd}, waits for {@code thread} to end (an interrupt of the caller does
     * not cut the wait short, it is passed on afterwards), then closes {@code stopFd}. For owner
     * threads that poll a stop eventfd next to their queue's fds.
     */
    public static void stopAndJoin(Thread thread, EventFd stopFd) {
        stopFd.signal();
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        stopFd.close();
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private void run() {
        Virtqueue q = binding.queue();
        EventFd kick = binding.kick();
        Interrupt call = binding.call();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pollfds = arena.allocate(16, 8);
            int n = 0;
            pollfds.set(ValueLayout.JAVA_INT, 0, stopFd.fd());
            pollfds.set(ValueLayout.JAVA_SHORT, 4, (short) Libc.POLLIN);
            n++;
            if (kick != null) {
                pollfds.set(ValueLayout.JAVA_INT, 8, kick.fd());
                pollfds.set(ValueLayout.JAVA_SHORT, 12, (short) Libc.POLLIN);
                n++;
            }
            DescriptorChain[] batch = new DescriptorChain[BATCH];
            while (!stopping) {
                // The first pass runs before any wait: buffers added before the start are served.
                q.disableNotifications();
                boolean more = true;
                while (more && !stopping) {
                    int got = drain(q, batch);
                    if (got > 0 && q.publishUsed()) {
                        call.signal();
                    }
                    if (got == BATCH) {
                        continue;
                    }
                    more = q.enableNotifications();
                    if (more) {
                        q.disableNotifications();
                    }
                }
                if (stopping) {
                    break;
                }
                pollfds.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
                pollfds.set(ValueLayout.JAVA_SHORT, 14, (short) 0);
                // A broken queue waits only for stop; a queue without kick fd is polled.
                int timeout = (kick == null && !q.isBroken()) ? POLL_MILLIS : -1;
                Libc.poll(pollfds, q.isBroken() ? 1 : n, timeout);
                // Drain the kick only when poll says it is readable: the fd may be blocking.
                if (kick != null && (pollfds.get(ValueLayout.JAVA_SHORT, 14) & Libc.POLLIN) != 0) {
                    kick.read();
                }
            }
        } catch (RuntimeException | Error e) {
            LOG.error("queue {} worker died", binding.index(), e);
        }
    }

    private int drain(Virtqueue q, DescriptorChain[] batch) {
        int n = 0;
        DescriptorChain c;
        while (n < batch.length && (c = q.pop()) != null) {
            batch[n++] = c;
        }
        for (int i = 0; i < n; i++) {
            DescriptorChain chain = batch[i];
            batch[i] = null;
            int written;
            try {
                written = handler.handle(chain);
            } catch (RuntimeException e) {
                // A device bug or a guest buffer too short for what the device expected: the
                // chain still goes back, so the driver is not left waiting for it.
                LOG.warn("queue {}: handler failed on chain {}: {}", binding.index(), chain.head(), e.toString());
                written = 0;
            }
            q.addUsed(chain, written);
        }
        return n;
    }
}
