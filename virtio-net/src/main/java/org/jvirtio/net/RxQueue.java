package org.jvirtio.net;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicBoolean;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.Virtqueue;

/**
 * A port's receive queue: frames other ports sent wait here (a few, bounded, each sender held to
 * its share), and go into the driver's buffers on this queue's thread as the driver offers them,
 * copied once from the sender's guest memory.
 *
 * <p>A switch never holds a frame against its sender: a frame that finds no buffer now is
 * dropped and counted. So when the ring has no buffer at the end of a drain (or when a frame
 * wakes a queue whose ring is empty) the frames waiting are dropped, and a sender's chain goes
 * back to its driver within one wake-up of the receiver's thread.
 *
 * <p>With MRG_RXBUF a frame spans as many chains as it needs: the first is the one the engine
 * started; the others are taken from the ring here, and when the ring has too few they are put
 * back (latest first) and the frame is dropped. They go back to the driver together, the first
 * (with num_buffers) first in the ring ({@code completeTogether}: on a packed ring the first used
 * descriptor is written last, so the driver never finds num_buffers before the buffers). Without it, a frame must
 * fit one chain or it is dropped.
 *
 * <p>Offloads: a frame with a partial checksum goes to a driver that negotiated GUEST_CSUM as it
 * is (NEEDS_CSUM with the same start and offset), and is finished here (the checksum computed
 * over the sender's bytes and written into the copy) for one that did not. A GSO frame goes as
 * it is to a driver that negotiated the GSO type; for one that did not, it is segmented here
 * ({@link Segmenter}), each segment in a chain of its own with a complete checksum.
 */
final class RxQueue implements QueueHandler, QueueIo {
    /** Frames that wait for one receive queue at most. */
    static final int CAPACITY = 256;

    private final VirtioNetDevice device;
    private final SwitchPort port;
    private final int pair;
    /** This pair's received frames and bytes (this queue's thread writes them alone). */
    private final Traffic received;
    private final QueueStats stats;
    private final Virtqueue q;
    private final boolean mergeable;
    private final boolean guestCsum;
    private final boolean guestTso4;
    private final boolean guestTso6;
    private final Copier copier = new Copier();
    private final Segmenter segmenter = new Segmenter();
    private final MemorySegment hdr = MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]);
    private final MemorySegment csum = MemorySegment.ofArray(new byte[2]);
    /** The chains of a frame that spans several (the first is the engine's, the rest popped here); reused. */
    private final DescriptorChain[] group;
    private final int[] groupLength;

    // ---- the frames waiting from other threads, guarded by 'waiting' ----
    private final ArrayDeque<Frame> waiting = new ArrayDeque<>(CAPACITY);
    /** Each sending port's share of the room (for a fair share of it). */
    private final SenderShares shares = new SenderShares(CAPACITY);
    private boolean open;
    /**
     * Frames in {@link #waiting}: written under its lock, read without it by this queue's thread
     * (a volatile read after its volatile store of {@code wanted}) to skip the lock when no other
     * thread has frames waiting. An offer's increment is a volatile store, before its volatile
     * {@code wanted.getAndSet}: the hand-shake that never lets both sides miss each other; this
     * queue's own decrement needs only release order (nobody waits on it going down).
     */
    private int elsewhere;
    private static final java.lang.invoke.VarHandle ELSEWHERE;

    static {
        try {
            ELSEWHERE = java.lang.invoke.MethodHandles.lookup().findVarHandle(RxQueue.class, "elsewhere", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
    /** Set by this queue's thread when it will not look at the frames again without a wake-up. */
    private final AtomicBoolean wanted = new AtomicBoolean();
    private final EventFd wake;
    private QueueCompletions completions;

    // ---- the frames waiting from this queue's own thread: that thread alone, no lock ----
    /**
     * The thread the queue was opened on (plain: another thread reads null or this one, never
     * its own). A port sending on this thread hands its frames over without a lock or an atomic
     * instruction, and they are copied without one ({@link Frame#retainHere}).
     */
    private Thread owner;
    private final ArrayDeque<Frame> here = new ArrayDeque<>(CAPACITY);
    private final SenderShares hereShares = new SenderShares(CAPACITY);
    /** When frames wait on both sides, they are taken from each in turn. */
    private boolean turnHere;
    /** Where the frame {@link #next()} returned came from. */
    private boolean tookHere;

    RxQueue(VirtioNetDevice device, SwitchPort port, int pair, QueueBinding binding, long negotiated) throws IOException {
        this.device = device;
        this.port = port;
        this.pair = pair;
        this.received = port.rxTraffic(pair);
        this.stats = binding.stats();
        this.q = binding.queue();
        this.mergeable = (negotiated & (1L << VirtioNet.F_MRG_RXBUF)) != 0;
        this.guestCsum = (negotiated & (1L << VirtioNet.F_GUEST_CSUM)) != 0;
        this.guestTso4 = (negotiated & (1L << VirtioNet.F_GUEST_TSO4)) != 0;
        this.guestTso6 = (negotiated & (1L << VirtioNet.F_GUEST_TSO6)) != 0;
        this.group = new DescriptorChain[q.size() + 1];
        this.groupLength = new int[q.size() + 1];
        this.wake = EventFd.create(true);
    }

    int pair() {
        return pair;
    }

    // ---- any thread ----

    /** Takes a frame for this queue (retaining it); false when it cannot wait here (closed, full, the sender over its share). */
    boolean offer(Frame f) {
        if (Thread.currentThread() == owner) {
            return offerHere(f);
        }
        int from = f.from.id();
        synchronized (waiting) {
            // Each sender gets an equal share of the room, with room kept for one more sender: a
            // port flooding the switch fills its share, not everybody's.
            if (!open || !shares.take(from)) {
                return false;
            }
            f.retain();
            waiting.addLast(f);
            ELSEWHERE.setVolatile(this, elsewhere + 1);
            // After the add: this queue's thread sets 'wanted' before it looks again. Under the
            // lock, so that close(), which takes it first, never closes the eventfd under a
            // signal (a closed fd's number may already be another file's).
            if (wanted.getAndSet(false) && !completions.wakeHere()) {
                wake.signal(); // from another thread: on this queue's own, the host reaps without it
            }
        }
        return true;
    }

    /** {@link #offer} on this queue's own thread: the same rules, without the lock. */
    private boolean offerHere(Frame f) {
        if (!open || !hereShares.take(f.from.id())) {
            return false;
        }
        f.retainHere();
        here.addLast(f);
        if (wanted.get()) {
            // This thread is the one that sets it; another thread's offer may clear it too (both
            // then wake the queue: one wake-up too many, never one too few).
            wanted.lazySet(false);
            if (!completions.wakeHere()) {
                wake.signal();
            }
        }
        return true;
    }

    /** The next frame waiting (from this thread's senders and the others' in turn), or null; {@link #tookHere} says whose. */
    private Frame next() {
        int others = (int) ELSEWHERE.getVolatile(this);
        if (!here.isEmpty() && (others == 0 || (turnHere = !turnHere))) {
            Frame f = here.pollFirst();
            hereShares.release(f.from.id());
            tookHere = true;
            return f;
        }
        if (others == 0) {
            return null; // read after 'wanted' was set (both volatile): an offer after this read wakes the queue
        }
        tookHere = false;
        synchronized (waiting) {
            Frame f = waiting.pollFirst();
            if (f != null) {
                shares.release(f.from.id());
                ELSEWHERE.setRelease(this, elsewhere - 1);
            }
            return f;
        }
    }

    /** This queue is done with {@code f}, which {@link #next()} returned from {@code fromHere}'s side. */
    private static void release(Frame f, boolean fromHere) {
        if (fromHere) {
            f.releaseHere();
        } else {
            f.release();
        }
    }

    // ---- the queue's thread ----

    @Override
    public void open(QueueCompletions c) {
        completions = c;
        owner = Thread.currentThread(); // the owning thread (QueueHandler#open)
        synchronized (waiting) {
            open = true;
        }
        // Nothing served yet (the ring may stay empty): the first frame wakes the queue, to be
        // placed or dropped.
        wanted.set(true);
        port.receiveQueue(pair, this);
    }

    @Override
    public QueueIo io() {
        return this;
    }

    @Override
    public int completionFd() {
        return wake.fd();
    }

    /** A frame came for a queue that said it would not look: serve it, or drop what waits if the ring has no buffer now. */
    @Override
    public int reap() {
        completions.resume();
        dropIfNoBuffer();
        return 0;
    }

    /** The end of a drain (the engine submits after each): a ring without buffers drops what waits. */
    @Override
    public void submit() {
        dropIfNoBuffer();
    }

    private void dropIfNoBuffer() {
        if (q.available() > 0) {
            return;
        }
        // Say so first, then look: a frame offered in between sees 'wanted' and wakes the queue.
        wanted.set(true);
        Frame f;
        while ((f = next()) != null) {
            dropped(f, "no receive buffer");
            release(f, tookHere);
        }
    }

    @Override
    public int start(DescriptorChain chain, int slot) {
        if (chain.writableLength() < VirtioNet.HDR_SIZE + VirtioNet.ETH_HLEN) {
            // Holds no frame, ever: answered empty so the ring moves on (the driver counts an error).
            stats.addError(org.jvirtio.api.QueueStats.ErrorKind.MALFORMED);
            return 0;
        }
        while (true) {
            Frame f = next();
            if (f == null) {
                wanted.set(true);
                f = next();
                if (f == null) {
                    return NOT_NOW;
                }
            }
            boolean fromHere = tookHere;
            int n;
            try {
                n = place(f, chain, slot);
            } finally {
                release(f, fromHere);
            }
            if (n != DROPPED) {
                return n;
            }
        }
    }

    private static final int DROPPED = -3;

    /** Puts {@code f} into {@code first} (and more chains with MRG_RXBUF); the bytes written, {@link #PENDING}, or {@link #DROPPED}. */
    private int place(Frame f, DescriptorChain first, int slot) {
        NetHeader h = f.hdr;
        int kind = h.gsoKind();
        boolean gso = h.gsoType != VirtioNet.GSO_NONE;
        if (gso && !(kind == VirtioNet.GSO_TCPV4 ? guestTso4 : guestTso6)) {
            return segment(f, first, slot);
        }
        boolean partial = h.needsCsum();
        boolean finish = partial && !guestCsum;
        long total = VirtioNet.HDR_SIZE + (long) f.length;
        int chains = 1;
        long room = first.writableLength();
        if (room < total) {
            if (!mergeable) {
                dropped(f, "receive buffer too small");
                return DROPPED;
            }
            int k = 0;
            while (room < total) {
                DescriptorChain c = k + 1 < group.length ? q.pop() : null;
                if (c == null) {
                    while (k > 0) {
                        q.unpop(group[k--]); // latest first: the ring is as it was
                    }
                    dropped(f, "not enough receive buffers");
                    return DROPPED;
                }
                group[++k] = c;
                room += c.writableLength();
            }
            chains = 1 + k;
        }
        int csumAt = -1;
        try {
            long low = NetHeader.low(finish ? 0 : (partial ? VirtioNet.HDR_F_NEEDS_CSUM : 0), gso ? h.gsoType : 0, gso ? h.hdrLen : 0,
                    gso ? h.gsoSize : 0, partial && !finish ? h.csumStart : 0);
            int high = NetHeader.high(partial && !finish ? h.csumOffset : 0, mergeable ? chains : 0);
            if (finish) {
                int sum = Copier.sum(f.chain, Frame.DATA + (long) h.csumStart, f.length - h.csumStart);
                int v = ~sum & 0xffff;
                csum.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 0, (short) (v == 0 ? 0xffff : v));
                csumAt = h.csumStart + h.csumOffset;
            }
            copier.source(f.chain, Frame.DATA);
            copier.destination(first);
            copier.writeHeader(low, high, hdr);
            long done = 0; // frame bytes copied
            if (f.rewritten) {
                // A stage rewrote the addresses: those 12 bytes from the frame's head, not the sender's
                // buffer (the first chain holds at least a header and an Ethernet header).
                copier.write(f.headSegment, 0, 12);
                copier.skipSource(12);
                done = 12;
            }
            for (int i = 0; i < chains; i++) {
                if (i > 0) {
                    copier.destination(group[i]);
                }
                long before = i == 0 ? 0 : done;
                done = fill(done, f.length, csumAt);
                groupLength[i] = (int) (done - before) + (i == 0 ? VirtioNet.HDR_SIZE : 0);
            }
        } catch (InternalError e) {
            // A fault in guest memory (a sender that truncated memory that could not be sealed):
            // the frame is dropped, the chains taken here go back into the ring (their driver
            // never sees what was written into them) and the first serves the next frame.
            putBack(chains - 1);
            dropped(f, "guest memory faulted while it was copied");
            return DROPPED;
        }
        received.add(1, f.length);
        stats.addBytes(f.length, true);
        if (chains == 1) {
            return groupLength[0];
        }
        // The first chain (it carries num_buffers), then the others in ring order, seen by the
        // driver together.
        group[0] = first;
        completions.completeTogether(slot, group, groupLength, chains);
        group[0] = null;
        return PENDING;
    }

    /**
     * A GSO frame for a driver that did not negotiate its type: segmented here ({@link Segmenter}),
     * one chain per segment, each segment a frame with a complete checksum. Too few chains (or one
     * too small for its segment): the chains taken are put back and the frame is dropped.
     */
    private int segment(Frame f, DescriptorChain first, int slot) {
        String bad = segmenter.parse(f);
        if (bad != null) {
            dropped(f, bad);
            return DROPPED;
        }
        int n = segmenter.segments();
        if (n > group.length) {
            dropped(f, "more segments than the ring has entries");
            return DROPPED;
        }
        if (first.writableLength() < VirtioNet.HDR_SIZE + segmenter.segmentLength(0)) {
            dropped(f, "receive buffer too small for a segment");
            return DROPPED;
        }
        for (int k = 1; k < n; k++) {
            DescriptorChain c = q.pop();
            if (c == null) {
                putBack(k - 1);
                dropped(f, "not enough receive buffers for the segments");
                return DROPPED;
            }
            group[k] = c;
            if (c.writableLength() < VirtioNet.HDR_SIZE + segmenter.segmentLength(k)) {
                putBack(k);
                dropped(f, "receive buffer too small for a segment");
                return DROPPED;
            }
        }
        group[0] = first;
        NetHeader.write(hdr, 0, 0, 0, 0, 0, 0, 0, mergeable ? 1 : 0);
        long bytes = 0;
        try {
            for (int i = 0; i < n; i++) {
                copier.destination(group[i]);
                copier.write(hdr, 0, VirtioNet.HDR_SIZE);
                segmenter.write(f, i, copier);
                int len = segmenter.segmentLength(i);
                groupLength[i] = VirtioNet.HDR_SIZE + len;
                bytes += len;
            }
        } catch (InternalError e) {
            putBack(n - 1); // as in place: a fault in guest memory
            group[0] = null;
            dropped(f, "guest memory faulted while it was segmented");
            return DROPPED;
        }
        received.add(n, bytes);
        stats.addBytes(bytes, true);
        if (n == 1) {
            group[0] = null;
            return groupLength[0];
        }
        completions.completeTogether(slot, group, groupLength, n);
        group[0] = null;
        return PENDING;
    }

    /** Puts back the chains taken into {@code group[1..last]}, latest first. */
    private void putBack(int last) {
        for (int j = last; j >= 1; j--) {
            q.unpop(group[j]);
        }
    }

    /**
     * Copies frame bytes from {@code done} on into the destination until it is full or the frame
     * ends, the two bytes at {@code csumAt} (when not -1) from the checksum computed instead of
     * the sender's; returns where it stopped.
     */
    private long fill(long done, long length, int csumAt) {
        while (done < length && copier.room() > 0) {
            if (csumAt >= 0 && (done == csumAt || done == csumAt + 1)) {
                copier.write(csum, done - csumAt, 1);
                copier.skipSource(1);
                done++;
                continue;
            }
            long until = csumAt >= 0 && done < csumAt ? csumAt : length;
            long k = copier.copy(Math.min(until - done, copier.room()));
            if (k == 0) {
                break; // the sender's chain ended early: cannot happen, its length was measured
            }
            done += k;
        }
        return done;
    }

    private void dropped(Frame f, String why) {
        port.rxDropped.incrementAndGet();
        device.dropped(port, why);
    }

    @Override
    public void close() {
        port.receiveQueue(pair, null);
        synchronized (waiting) {
            open = false;
        }
        Frame f;
        while ((f = next()) != null) {
            port.rxDropped.incrementAndGet();
            release(f, tookHere);
        }
        wanted.set(false);
        synchronized (waiting) {
            wake.close(); // no offer is between its add and its signal now (both under the lock)
        }
    }
}
