package org.jvirtio.testkit.transports;

import java.io.IOException;
import java.util.function.BooleanSupplier;

import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.host.QueueEngine;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.testkit.RecordingContext;

/** The queue engine on the caller's thread: the device as it is, without a transport. */
final class DirectRig extends BaseRig {
    private final VirtioDevice device;
    private final RingQueue[] rings;
    private final QueueEngine[] engines;
    private volatile boolean needsReset;
    private volatile RecordingContext context = new RecordingContext(0);
    private boolean active;

    DirectRig(VirtioDevice device, GuestMemory memory, long wanted) {
        super(Kind.DIRECT, memory);
        this.device = device;
        this.rings = new RingQueue[device.queueCount()];
        this.engines = new QueueEngine[device.queueCount()];
        restart(wanted);
    }

    @Override
    public void restart(long wanted) {
        features = FeatureNegotiation.offeredWithPacked(device) & wanted;
        needsReset = false;
        context = new RecordingContext(features);
        device.activate(context);
        active = true;
    }

    @Override
    public void startQueue(int index, int size, long desc, long avail, long used) throws IOException {
        RingQueue q = RingQueue.create(index, device.maxChainLength(), features);
        q.setViolationListener((queue, v) -> needsReset = true);
        try {
            q.activate(memory, size, desc, avail, used, features);
        } catch (RingConfigurationException e) {
            needsReset = true;
            return;
        }
        QueueBinding binding = new QueueBinding(index, q, null, Interrupt.NONE);
        QueueEngine e = new QueueEngine(binding, device.openQueue(binding));
        e.open();
        rings[index] = q;
        engines[index] = e;
    }

    /** The engine of a started queue (for tests of the engine's own behaviour). */
    QueueEngine engine(int index) {
        return engines[index];
    }

    @Override
    public boolean kickAndWait(int index, BooleanSupplier done, long millis) {
        QueueEngine e = engines[index];
        if (e == null) {
            return done.getAsBoolean();
        }
        long deadline = System.nanoTime() + millis * 1_000_000L;
        while (true) {
            while (e.serve()) {
                // the serve budget ran out: serve again, as a host does
            }
            if (e.inFlight() > 0) {
                e.reapCompletions();
            }
            if (done.getAsBoolean()) {
                return true;
            }
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.onSpinWait();
        }
    }

    @Override
    public int stopQueue(int index) {
        QueueEngine e = engines[index];
        if (e == null) {
            return 0;
        }
        e.quiesce();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (e.inFlight() > 0 && System.nanoTime() - deadline < 0) {
            e.reapCompletions();
            Thread.onSpinWait();
        }
        e.close();
        engines[index] = null;
        int next = rings[index] instanceof PackedQueue p ? p.availState() : ((SplitQueue) rings[index]).nextAvail();
        rings[index].deactivate();
        rings[index] = null;
        return next;
    }

    @Override
    public boolean needsReset() {
        return needsReset || !context.resets.isEmpty();
    }

    @Override
    public void reset() {
        for (int i = 0; i < engines.length; i++) {
            stopQueue(i);
        }
        if (active) {
            device.reset();
            active = false;
        }
    }

    @Override
    public void close() {
        reset();
    }
}
