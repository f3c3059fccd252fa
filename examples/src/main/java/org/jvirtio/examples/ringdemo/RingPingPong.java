package org.jvirtio.examples.ringdemo;

import java.util.concurrent.atomic.AtomicReference;

import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitRingLayout;

/**
 * A driver thread and a device thread exchanging requests through one split ring in a shared
 * memfd mapping, with eventfds for kick and call, exactly as a guest and a vhost-user backend
 * would (minus the socket). Each request carries a sequence number in a device-readable buffer;
 * the device writes its complement into a device-writable buffer; the driver checks every
 * answer and that every request completes exactly once.
 *
 * <p>Every wait is bounded: a side that waits longer than {@code stallMillis} for the other
 * reports a lost wake-up instead of hanging.
 */
public final class RingPingPong {
    /** What a run measured. */
    public record Result(long requests, long nanos, long kicks, long interrupts, long deviceWakeups) {
        public double requestsPerSecond() {
            return requests * 1e9 / nanos;
        }
    }

    private static final long RING_BASE = 0x1000;
    private static final int MAX_INDIRECT = 4;

    private final int queueSize;
    private final boolean eventIdx;
    private final int stallMillis;
    private final boolean packed;

    public RingPingPong(int queueSize, boolean eventIdx, int stallMillis) {
        this(queueSize, eventIdx, stallMillis, false);
    }

    /** @param packed a packed ring (VIRTIO 1.3, 2.8) instead of a split one */
    public RingPingPong(int queueSize, boolean eventIdx, int stallMillis, boolean packed) {
        this.queueSize = queueSize;
        this.eventIdx = eventIdx;
        this.stallMillis = stallMillis;
        this.packed = packed;
    }

    /** Runs {@code total} requests; throws {@link IllegalStateException} on any lost, duplicate or wrong completion, or a stall. */
    public Result run(long total) throws ErrnoException, InterruptedException, RingConfigurationException {
        long features = VirtioFeatures.mask(VirtioFeatures.VERSION_1, VirtioFeatures.INDIRECT_DESC)
                | (eventIdx ? VirtioFeatures.bit(VirtioFeatures.EVENT_IDX) : 0)
                | (packed ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
        long indirectArea = SplitRingLayout.align(RING_BASE + QueueDriver.ringBytes(queueSize, features), 16);
        long dataArea = SplitRingLayout.align(indirectArea + (long) queueSize * MAX_INDIRECT * 16, 4096);
        long memSize = SplitRingLayout.align(dataArea + (long) queueSize * 32, 4096);
        MemoryMapping mapping = MemoryMapping.memfd("jvirtio-ring-demo", memSize);
        GuestMemory memory = GuestMemory.of(GuestRegion.of(0, mapping));
        mapping.release();
        try (EventFd kick = EventFd.create(true); EventFd call = EventFd.create(true)) {
            QueueDriver driver = QueueDriver.at(memory, RING_BASE, queueSize, features, indirectArea, MAX_INDIRECT);
            RingQueue device = RingQueue.create(0, RingQueue.DEFAULT_MAX_CHAIN_BUFFERS, features);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            device.setViolationListener((q, v) -> failure.compareAndSet(null, new IllegalStateException(v.message())));
            device.activate(memory, queueSize, driver.descAddr(), driver.availAddr(), driver.usedAddr(), features);
            long[] counters = new long[3]; // interrupts, wakeups (device side)
            Thread deviceThread = Thread.ofPlatform().name("ring-demo-device").start(() -> {
                try {
                    deviceLoop(device, kick, call, counters, failure);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
            long t0 = System.nanoTime();
            long kicks;
            try {
                kicks = driverLoop(driver, memory, dataArea, total, kick, call, failure);
            } catch (IllegalStateException e) {
                throw new IllegalStateException(e.getMessage() + "; " + dump(memory, driver, device), e);
            } finally {
                failure.compareAndSet(null, STOP);
                kick.signal();
                deviceThread.join();
            }
            long nanos = System.nanoTime() - t0;
            Throwable f = failure.get();
            if (f != STOP) {
                throw new IllegalStateException("ring exchange failed: " + f.getMessage(), f);
            }
            return new Result(total, nanos, kicks, counters[0], counters[1]);
        } finally {
            memory.release();
        }
    }

    /** Both sides' state and the ring's words, for a failure message (the sides are stuck: it holds still). */
    private String dump(GuestMemory memory, QueueDriver driver, RingQueue device) {
        StringBuilder b = new StringBuilder("device ").append(device).append(", driver ").append(driver);
        if (packed) {
            b.append(String.format(", driver event 0x%08x, device event 0x%08x, descriptors:", memory.readU32(driver.availAddr()),
                    memory.readU32(driver.usedAddr())));
            for (int i = 0; i < queueSize; i++) {
                long d = driver.descAddr() + 16L * i;
                b.append(String.format(" [%d len %d id %d flags 0x%04x]", i, memory.readU32(d + 8), memory.readU16(d + 12), memory.readU16(d + 14)));
            }
        }
        return b.toString();
    }

    /** Marker the driver leaves in {@code failure} to stop the device thread. */
    private static final Throwable STOP = new Throwable("stop", null, false, false) { };

    private void deviceLoop(RingQueue q, EventFd kick, EventFd call, long[] counters, AtomicReference<Throwable> failure)
            throws ErrnoException {
        while (failure.get() == null) {
            q.disableNotifications();
            boolean progress = true;
            while (progress) {
                DescriptorChain c;
                int n = 0;
                while ((c = q.pop()) != null) {
                    long seq = c.reader().readU64();
                    ChainWriter w = c.writer();
                    w.writeU64(~seq);
                    q.addUsed(c, 8);
                    n++;
                }
                if (n > 0 && q.publishUsed()) {
                    counters[0]++;
                    call.signal();
                }
                progress = q.enableNotifications();
                if (progress) {
                    q.disableNotifications();
                }
            }
            if (q.isBroken()) {
                return;
            }
            // Sleep until kicked. The bound only turns a lost wake-up into a failure.
            if (kick.await(stallMillis) == 0 && failure.get() == null) {
                throw new IllegalStateException("device waited " + stallMillis + " ms for a kick: lost wake-up"
                        + " (driver avail idx visible to device: " + q.available() + " pending)");
            }
            counters[1]++;
        }
    }

    private long driverLoop(QueueDriver d, GuestMemory memory, long dataArea, long total, EventFd kick, EventFd call,
                            AtomicReference<Throwable> failure) throws ErrnoException {
        byte[] completed = new byte[(int) Math.min(total, Integer.MAX_VALUE - 8)];
        long[] addrs = new long[2];
        int[] lens = {8, 8};
        long submitted = 0;
        long[] done = {0};
        long kicks = 0;
        QueueDriver.UsedHandler onUsed = (head, seq, len) -> {
            long answer = memory.readU64(dataArea + 32L * head + 16);
            if (len != 8 || answer != ~seq) {
                throw new IllegalStateException("request " + seq + " answered wrongly: len " + len + ", value " + answer);
            }
            int i = (int) (seq % completed.length);
            if (completed[i] != 0) {
                throw new IllegalStateException("request " + seq + " completed twice");
            }
            completed[i] = 1;
            done[0]++;
        };
        d.disableInterrupts();
        while (done[0] < total) {
            Throwable f = failure.get();
            if (f != null) {
                throw new IllegalStateException("device failed: " + f.getMessage(), f);
            }
            int added = 0;
            while (submitted < total && d.freeDescriptors() >= 2) {
                boolean indirect = (submitted & 3) == 3;
                long slot = dataArea + 32L * d.nextHead();
                memory.writeU64(slot, submitted);
                addrs[0] = slot;
                addrs[1] = slot + 16;
                int head = indirect ? d.addIndirect(addrs, lens, 2, 1, submitted) : d.add(addrs, lens, 2, 1, submitted);
                if (dataArea + 32L * head != slot) {
                    throw new IllegalStateException("driver used head " + head + " instead of the announced one");
                }
                submitted++;
                added++;
            }
            if (added > 0 && d.publish()) {
                kicks++;
                kick.signal();
            }
            if (d.pollUsed(onUsed) > 0) {
                continue;
            }
            if (d.enableInterrupts()) {
                d.disableInterrupts();
                continue;
            }
            if (call.await(stallMillis) == 0) {
                throw new IllegalStateException("driver waited " + stallMillis + " ms for an interrupt: lost wake-up ("
                        + d.inFlight() + " in flight, " + done[0] + " of " + total + " done)");
            }
            d.disableInterrupts();
        }
        for (int i = 0; i < Math.min(total, completed.length); i++) {
            if (completed[i] != 1) {
                throw new IllegalStateException("request " + i + " never completed");
            }
        }
        return kicks;
    }
}
