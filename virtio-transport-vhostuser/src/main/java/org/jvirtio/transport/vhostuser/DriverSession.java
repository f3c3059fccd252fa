package org.jvirtio.transport.vhostuser;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.ring.SplitRingLayout;

/**
 * The driver kit: the guest's side of a vhost-user device, set up as QEMU and a guest driver
 * would, for testing a device (or driving one from Java) without a VM. It connects, makes
 * shareable memfd guest memory (one region at guest address 0), negotiates features, shares the
 * memory table, and sets up queues, each returned as a {@link DriverQueue}: the driver side of
 * the ring with its kick and call eventfds.
 *
 * <pre>{@code
 * try (DriverSession s = DriverSession.connect(socket, 1 << 20)) {
 *     s.negotiate(~0L);                       // everything offered
 *     DriverQueue q = s.queue(0, 64);
 *     long buf = s.allocate(4096, 8);
 *     q.ring().add(new long[] {buf}, new int[] {4096}, 1, 0, 42);   // one writable buffer
 *     q.publish();
 *     q.awaitUsed((head, token, len) -> ..., 1000);
 * }
 * }</pre>
 *
 * <p>Not thread-safe: one thread sets the session up; each queue is then used by one thread.
 */
public final class DriverSession implements AutoCloseable {
    /** Guest memory below this is left unused (a null guest address stays invalid). */
    private static final long FIRST = 0x1000;

    private final VhostUserFrontend frontend;
    private final GuestMemory memory;
    private final List<DriverQueue> queues = new ArrayList<>();
    private long next = FIRST;
    private long features;
    private boolean shared;

    private DriverSession(VhostUserFrontend frontend, GuestMemory memory) {
        this.frontend = frontend;
        this.memory = memory;
    }

    /** Connects to the backend at {@code socket} and makes {@code memoryBytes} of guest memory. Nothing is negotiated yet. */
    public static DriverSession connect(Path socket, long memoryBytes) throws IOException {
        VhostUserFrontend fe = VhostUserFrontend.connect(socket);
        try {
            MemoryMapping m = MemoryMapping.memfd("jvirtio-driver", memoryBytes);
            GuestMemory mem = GuestMemory.of(GuestRegion.of(0, m));
            m.release();
            return new DriverSession(fe, mem);
        } catch (IOException | RuntimeException e) {
            fe.close();
            throw e;
        }
    }

    /**
     * Connects to the backend at {@code socket} with guest memory of the caller's making (one
     * region at guest address 0: a file that cannot be sealed, say, as DPDK's and hugepage-backed
     * QEMU's are). The session takes the caller's reference to {@code memory} and releases it when
     * closed.
     */
    public static DriverSession connect(Path socket, GuestMemory memory) throws IOException {
        return new DriverSession(VhostUserFrontend.connect(socket), memory);
    }

    /** The connection, for requests the kit does not wrap (GET_CONFIG, GET_VRING_BASE, ...). */
    public VhostUserFrontend frontend() {
        return frontend;
    }

    public GuestMemory memory() {
        return memory;
    }

    /** The features negotiated (without VHOST_USER_F_PROTOCOL_FEATURES); 0 before {@link #negotiate}. */
    public long features() {
        return features;
    }

    /**
     * SET_OWNER, then the features offered that are also {@code wanted}, every protocol feature
     * both sides know, and the memory table.
     *
     * @return the negotiated features
     */
    public long negotiate(long wanted) throws IOException {
        features = frontend.negotiate(wanted, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES | 1L << VhostUserProtocol.PROTOCOL_F_RARP);
        shareMemory();
        return features;
    }

    /**
     * Sets the features queues are laid out for (EVENT_IDX), for a caller that negotiated through
     * {@link #frontend()} itself.
     */
    public void useFeatures(long negotiated) {
        this.features = negotiated;
    }

    /** Sends the memory table (once; {@link #negotiate} does it). */
    public void shareMemory() throws IOException {
        if (!shared) {
            frontend.setMemTable(memory);
            shared = true;
        }
    }

    /**
     * Reserves {@code bytes} of guest memory aligned to {@code alignment} (a power of two) and
     * returns its guest address; the memory reads zero until written.
     */
    public long allocate(long bytes, long alignment) {
        if (bytes < 0 || alignment < 1 || Long.bitCount(alignment) != 1) {
            throw new IllegalArgumentException("bad allocation: " + bytes + " bytes aligned to " + alignment);
        }
        long at = (next + alignment - 1) & -alignment;
        long end = memory.regionCount() == 0 ? 0 : memory.region(0).size();
        if (at + bytes > end) {
            throw new IllegalStateException("guest memory exhausted: " + bytes + " bytes asked, " + Math.max(0, end - at) + " left");
        }
        next = at + bytes;
        return at;
    }

    /** {@link #queue(int, int, int)} without indirect tables. */
    public DriverQueue queue(int index, int size) throws IOException {
        return queue(index, size, 0);
    }

    /**
     * Lays out queue {@code index} of {@code size} entries in guest memory and starts it:
     * SET_VRING_NUM, _BASE (0, or for a packed ring both wrap counters 1), _ADDR, _KICK, _CALL,
     * _ENABLE. The layout is the one the session negotiated (VIRTIO_F_RING_PACKED or not). With
     * {@code maxIndirect} above 0, each chain gets room for an indirect table of that many
     * descriptors.
     */
    public DriverQueue queue(int index, int size, int maxIndirect) throws IOException {
        long base = allocate(QueueDriver.ringBytes(size, features), 4096);
        long indirect = maxIndirect > 0 ? allocate((long) size * maxIndirect * SplitRingLayout.DESC_SIZE, 16) : -1;
        QueueDriver ring = QueueDriver.at(memory, base, size, features, indirect, maxIndirect);
        DriverQueue q = DriverQueue.create(index, ring);
        try {
            frontend.setVringNum(index, size);
            frontend.setVringBase(index, ring.packed() ? PackedQueue.FRESH | PackedQueue.FRESH << 16 : 0);
            frontend.setVringAddr(index, ring.descAddr(), ring.availAddr(), ring.usedAddr());
            frontend.setVringKick(index, q.kick());
            frontend.setVringCall(index, q.call());
            frontend.setVringEnable(index, true);
        } catch (IOException | RuntimeException e) {
            q.close();
            throw e;
        }
        queues.add(q);
        return q;
    }

    /** Disconnects (the backend resets the device), then closes every queue's eventfds and releases the memory. */
    @Override
    public void close() {
        frontend.close();
        for (DriverQueue q : queues) {
            q.close();
        }
        queues.clear();
        memory.release();
    }
}
