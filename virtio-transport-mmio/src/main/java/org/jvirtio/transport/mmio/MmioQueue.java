package org.jvirtio.transport.mmio;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.RingGeometry;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitRingLayout;

/**
 * One queue of a virtio-mmio device: its registers as the driver wrote them (QueueNum and the
 * three ring addresses, QueueReady), its kick eventfd and its ring, which is judged and activated
 * at QueueReady and handed to the device's queue host once DRIVER_OK is set too. The ring is
 * split or packed as the negotiated features say (the same three address registers: descriptor
 * area, driver area, device area). Guarded by the transport's lock.
 */
final class MmioQueue {
    /** Makes the ring object of a queue for the negotiated features (with the transport's violation listener). */
    interface RingFactory {
        RingQueue ring(int index, long features);
    }

    final int index;
    /** QueueNumMax. */
    final int max;
    final EventFd kick;
    private final RingFactory rings;
    private RingQueue ring;
    int num;
    long desc;
    long driver;
    long device;
    private boolean ready;
    private boolean running;

    MmioQueue(int index, int max, EventFd kick, RingFactory rings) {
        this.index = index;
        this.max = max;
        this.kick = kick;
        this.rings = rings;
        this.ring = rings.ring(index, 0);
    }

    /** QueueReady as the driver reads it. */
    boolean ready() {
        return ready;
    }

    /**
     * QueueReady written with 1: judges the registers and activates the ring as the driver placed
     * it in {@code memory}; null when the queue is now ready, else why it is refused.
     */
    String makeReady(GuestMemory memory, long features) {
        boolean packed = VirtioFeatures.has(features, VirtioFeatures.RING_PACKED);
        if (packed ? num < 1 || num > max : !SplitRingLayout.isValidSize(num) || num > max) {
            return "queue " + index + " size " + Integer.toUnsignedString(num) + (packed ? " is not in [1, " : " is not a power of two in [1, ")
                    + max + "]";
        }
        RingGeometry g;
        try {
            g = RingGeometry.of(index, memory, num, desc, driver, device, packed);
        } catch (RingConfigurationException e) {
            return e.getMessage();
        }
        if (ring.packed() != packed) {
            ring = rings.ring(index, features); // stopped, nothing in flight: the layout the driver chose
        }
        ring.activate(g, features, ring.freshState(), packed ? -1 : 0);
        ready = true;
        return null;
    }

    /** Hands the ready ring to the device's host (once; nothing when not ready). */
    void start(DeviceQueues queues, GuestMemory memory, Interrupt call) {
        if (running || !ready) {
            return;
        }
        queues.start(new QueueBinding(index, ring, kick, call), memory);
        running = true;
    }

    /**
     * Stops the queue's processing (bounded drain) and deactivates its ring; QueueReady reads 0.
     * A queue that gave up on requests gets a fresh ring object: the old one may still be touched
     * by what it abandoned.
     */
    void stop(DeviceQueues queues) {
        if (running) {
            running = false;
            if (!queues.stop(index)) {
                ring = rings.ring(index, ring.packed() ? VirtioFeatures.bit(VirtioFeatures.RING_PACKED) : 0);
            }
        }
        ring.deactivate();
        ready = false;
    }

    /** Stops the queue and returns its registers to their reset values (a device reset, or QueueReset). */
    void reset(DeviceQueues queues) {
        stop(queues);
        num = 0;
        desc = 0;
        driver = 0;
        device = 0;
    }
}
