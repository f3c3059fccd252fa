package org.jvirtio.net;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.QueueStats;
import org.jvirtio.api.Virtqueue;

/**
 * A port's receive queue: frames other ports sent wait in its {@link RxInbox} (a few, bounded,
 * each sender held to its share), and go into the driver's buffers on this queue's thread as the
 * driver offers them, copied once from the sender's guest memory.
 *
 * <p>A switch never holds a frame against its sender: a frame that finds no buffer now is
 * dropped and counted. So when the ring has no buffer at the end of a drain (or when a frame
 * wakes a queue whose ring is empty) the frames waiting are dropped, and a sender's chain goes
 * back to its driver within one wake-up of the receiver's thread. The ring is looked at again
 * after each frame is taken: a frame sent after the driver posted buffers is never dropped in
 * front of them, even when they came while the frames before it were being dropped.
 *
 * <p>A frame from a port whose transmit queue runs on this queue's thread skips the inbox when
 * nothing waits in it: {@link #placeNow} has the engine serve the ring's next chain there and
 * then ({@code QueueCompletions.serveOneNow}), and {@link #start} places the frame into it, all
 * on the sender's call stack; the sender's chain goes back as soon as its own {@code start}
 * ends. A frame that finds no chain waits in the inbox as any other.
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

    /** The frames waiting for this queue (from its own thread and from others). */
    private final RxInbox inbox;
    /** The frame {@link #placeNow} hands to the next {@link #start}, or null. */
    private Frame direct;
    /**
     * A frame taken from the inbox to be dropped that found buffers after all (the driver posted
     * them while the frames before it were dropped): the next {@link #start} places it before the
     * inbox's frames, or null. Whether it came from this thread's side of the inbox.
     */
    private Frame held;
    private boolean heldHere;
    private QueueCompletions completions;

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
        this.inbox = new RxInbox();
    }

    int pair() {
        return pair;
    }

    // ---- any thread ----

    /** Takes a frame for this queue (retaining it); false when it cannot wait here (closed, full, the sender over its share). */
    boolean offer(Frame f) {
        return inbox.offer(f);
    }

    // ---- the queue's thread ----

    /**
     * Puts {@code f} into the ring's next chain now, on this queue's thread (a transmit queue of
     * the same I/O thread sending), when no frame waits before it: no hand-over through the
     * inbox, no hold on the frame, and the sender's chain can go back at once. True when the
     * frame was taken (placed, or dropped and counted as {@link #start} drops); false when it
     * must be {@link #offer}ed as before (another thread, frames waiting, no chain now, a chain
     * that holds no frame, the queue stopping).
     */
    boolean placeNow(Frame f) {
        if (!inbox.emptyHere() || held != null || direct != null) {
            return false; // another thread, frames waiting or one held for late buffers (theirs go first), or re-entered
        }
        direct = f;
        completions.serveOneNow();
        boolean taken = direct == null;
        direct = null;
        return taken;
    }

    @Override
    public void open(QueueCompletions c) {
        completions = c;
        inbox.open(c); // on the owning thread (QueueHandler#open): its senders need no lock
        port.receiveQueue(pair, this);
    }

    @Override
    public QueueIo io() {
        return this;
    }

    @Override
    public int completionFd() {
        return inbox.fd();
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
        if (held != null) {
            Frame f = held;
            held = null; // the buffers it saw were answered empty (chains too small for any frame)
            dropped(f, "no receive buffer");
            RxInbox.release(f, heldHere);
        }
        // Say so first, then look: a frame offered in between sees 'wanted' and wakes the queue.
        inbox.lookLater();
        Frame f;
        while ((f = inbox.next()) != null) {
            boolean fromHere = inbox.tookHere();
            // Looked at after the frame was taken: buffers the driver posted before the frame
            // was sent (or while this thread was away between two frames) are seen, and the frame
            // waits for the drain that serves them (their kick, or the serve after this reap's
            // resume) instead of being dropped in front of them.
            if (q.available() > 0) {
                held = f;
                heldHere = fromHere;
                return;
            }
            dropped(f, "no receive buffer");
            RxInbox.release(f, fromHere);
        }
    }

    @Override
    public int start(DescriptorChain chain, int slot) {
        if (chain.writableLength() < VirtioNet.HDR_SIZE + VirtioNet.ETH_HLEN) {
            // Holds no frame, ever: answered empty so the ring moves on (the driver counts an error).
            stats.addError(org.jvirtio.api.QueueStats.ErrorKind.MALFORMED);
            return 0;
        }
        Frame d = direct;
        if (d != null) {
            direct = null; // taken: placed, or dropped and counted (the sender still holds it)
            int n = place(d, chain, slot);
            if (n != DROPPED) {
                return n;
            }
        }
        Frame h = held;
        if (h != null) {
            held = null;
            int n = placeAndRelease(h, heldHere, chain, slot);
            if (n != DROPPED) {
                return n;
            }
        }
        while (true) {
            Frame f = inbox.next();
            if (f == null) {
                inbox.lookLater();
                f = inbox.next();
                if (f == null) {
                    return NOT_NOW;
                }
            }
            int n = placeAndRelease(f, inbox.tookHere(), chain, slot);
            if (n != DROPPED) {
                return n;
            }
        }
    }

    /** {@link #place} for a frame the inbox held (from this thread's side of it or not), which is released after. */
    private int placeAndRelease(Frame f, boolean fromHere, DescriptorChain chain, int slot) {
        try {
            return place(f, chain, slot);
        } finally {
            RxInbox.release(f, fromHere);
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
        inbox.shut();
        if (held != null) {
            port.rxDropped.incrementAndGet();
            RxInbox.release(held, heldHere);
            held = null;
        }
        Frame f;
        while ((f = inbox.next()) != null) {
            port.rxDropped.incrementAndGet();
            RxInbox.release(f, inbox.tookHere());
        }
        inbox.close();
    }
}
