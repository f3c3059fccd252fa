package org.jvirtio.blk.dataplane;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.TestMemory;

import static org.jvirtio.blk.VirtioBlk.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A driver for one virtio-blk queue in memfd guest memory with real kick and call eventfds: what
 * a guest does, minus the guest. Each request slot k has its header, status byte and up to 64 KiB
 * of data at fixed addresses.
 */
final class BlkRig implements AutoCloseable {
    static final int SIZE = 128;
    static final long RINGS = 0x1000;
    static final long HEADERS = 0x100000;
    static final long DATA = 0x200000;
    static final int MAX_DATA = 64 << 10;

    final int index;
    final GuestMemory mem;
    final SplitQueueDriver driver;
    final SplitQueue queue;
    final EventFd kick;
    final EventFd call;
    final Map<Long, Integer> status = new HashMap<>();
    final Map<Long, Integer> usedLength = new HashMap<>();
    private long nextToken = 1;
    private final Map<Long, Integer> slotOf = new HashMap<>();
    private final List<Integer> freeSlots = new ArrayList<>();

    BlkRig(GuestMemory mem, int index, long base, DeviceQueues queues) throws Exception {
        this(mem, index, base, queues, true);
    }

    /** @param withKick false: the queue has no kick eventfd (vhost-user NOFD) and must be polled */
    BlkRig(GuestMemory mem, int index, long base, DeviceQueues queues, boolean withKick) throws Exception {
        this.index = index;
        this.mem = mem;
        long f = FeatureNegotiation.offered(queues.device());
        this.driver = SplitQueueDriver.at(mem, base, SIZE, f, 0, 0);
        this.queue = new SplitQueue(index);
        queue.activate(mem, SIZE, driver.descAddr(), driver.availAddr(), driver.usedAddr(), f, 0, 0);
        this.kick = EventFd.create(true);
        this.call = EventFd.create(true);
        for (int i = SIZE - 1; i >= 0; i--) {
            freeSlots.add(i);
        }
        queues.start(new QueueBinding(index, queue, withKick ? kick : null, call::signal));
    }

    static GuestMemory memory() throws Exception {
        GuestMemory g = TestMemory.memfd(2 * SIZE * (long) MAX_DATA + DATA * 2);
        return g;
    }

    long header(int slot) {
        return HEADERS + 64L * slot + (long) index * SIZE * 64;
    }

    long data(int slot) {
        return DATA + (long) MAX_DATA * slot + (long) index * SIZE * MAX_DATA;
    }

    /** Whether another request of up to {@code pieces} data buffers fits. */
    boolean room(int pieces) {
        return !freeSlots.isEmpty() && driver.freeDescriptors() >= pieces + 2;
    }

    /**
     * Queues a request (not yet published): header, the data split into {@code pieces} buffers at
     * random byte boundaries, status. Returns its token.
     */
    long add(int type, long sector, byte[] out, int inLen, int pieces, Random rnd) {
        int slot = freeSlots.remove(freeSlots.size() - 1);
        long h = header(slot);
        mem.writeU32(h, type);
        mem.writeU32(h + 4, 0);
        mem.writeU64(h + 8, sector);
        mem.writeU8(h + 16, 0xee);
        int len = out != null ? out.length : inLen;
        if (out != null) {
            mem.write(data(slot), MemorySegment.ofArray(out));
        } else {
            mem.write(data(slot), MemorySegment.ofArray(new byte[len]));
        }
        int n = len == 0 ? 0 : Math.max(1, Math.min(pieces, len));
        long[] addrs = new long[n + 2];
        int[] lens = new int[n + 2];
        addrs[0] = h;
        lens[0] = 16;
        int[] cuts = new int[n + 1];
        cuts[n] = len;
        for (int i = 1; i < n; i++) {
            cuts[i] = 1 + rnd.nextInt(len - 1);
        }
        if (n > 1) {
            java.util.Arrays.sort(cuts, 1, n);
        }
        int k = 1;
        for (int i = 0; i < n; i++) {
            if (cuts[i + 1] > cuts[i]) {
                addrs[k] = data(slot) + cuts[i];
                lens[k] = cuts[i + 1] - cuts[i];
                k++;
            }
        }
        addrs[k] = h + 16;
        lens[k] = 1;
        k++;
        int readable = out != null ? k - 1 : 1;
        long token = nextToken++;
        assertTrue(driver.add(addrs, lens, k, readable, token) >= 0, "ring full");
        slotOf.put(token, slot);
        return token;
    }

    void publishAndKick() {
        driver.publish();
        kick.signal();
    }

    /** Waits until every request in flight came back (10 s at most). */
    void awaitAll() throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (driver.inFlight() > 0) {
            // As a guest does: ask for an interrupt (EVENT_IDX used_event), re-check, then sleep.
            if (!driver.enableInterrupts()) {
                assertTrue(call.await(2000) > 0 || driver.hasUsed(), "no interrupt for used buffers");
            }
            collect();
            assertTrue(System.nanoTime() < deadline, "requests did not complete: " + driver.inFlight() + " in flight");
        }
    }

    void collect() {
        driver.pollUsed((head, token, length) -> {
            int slot = slotOf.get(token);
            status.put(token, mem.readU8(header(slot) + 16));
            usedLength.put(token, length);
        });
    }

    /** The data of a completed request's slot, then frees the slot. */
    byte[] take(long token, int len) {
        int slot = slotOf.remove(token);
        byte[] b = new byte[len];
        mem.read(data(slot), MemorySegment.ofArray(b));
        freeSlots.add(slot);
        return b;
    }

    int statusOf(long token) {
        return status.get(token);
    }

    @Override
    public void close() {
        kick.close();
        call.close();
    }
}
