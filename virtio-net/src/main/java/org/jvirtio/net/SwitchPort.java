package org.jvirtio.net;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * One port of a {@link NetSwitch}: a virtio-net device's receive queues (where frames for it
 * go) and its counters. Frames reach it on whichever thread forwards them; it hands each to the
 * receive queue of the sender's queue pair (modulo the pairs it has running), or drops it and
 * counts why.
 */
public final class SwitchPort {
    /** The most receive queues a port has (VIRTIO's limit on queue pairs is 0x8000). */
    static final int MAX_PAIRS = 256;

    private final NetSwitch sw;
    private final int id;
    private final String name;
    /** Its receive queues by pair, set while each runs. */
    private final AtomicReferenceArray<RxQueue> rx = new AtomicReferenceArray<>(MAX_PAIRS);
    private volatile int pairsRunning;
    private volatile boolean adminUp = true;
    /** Set when this port is a switch's tap uplink: frames for it are written to the host. */
    private volatile TapPort tap;

    // Counters: written by the port's own threads and by every sender's (drops on the way in).
    // Frames and bytes sent and received: each queue pair's transmit and receive queues count in
    // cells of their own (one writer each, no atomic per frame); the rest (a tap's thread, frames the
    // device makes) in the atomics below; the sums are what the port reports.
    private final AtomicReferenceArray<Traffic> sent = new AtomicReferenceArray<>(MAX_PAIRS);
    private final AtomicReferenceArray<Traffic> received = new AtomicReferenceArray<>(MAX_PAIRS);
    final AtomicLong txFrames = new AtomicLong();
    final AtomicLong txBytes = new AtomicLong();
    final AtomicLong txDropped = new AtomicLong();
    final AtomicLong rxFrames = new AtomicLong();
    final AtomicLong rxBytes = new AtomicLong();
    /** Frames for this port dropped: no receive queue running, its queue full, no buffer, a buffer too small. */
    final AtomicLong rxDropped = new AtomicLong();
    final AtomicLong filtered = new AtomicLong();

    SwitchPort(NetSwitch sw, int id, String name) {
        this.sw = sw;
        this.id = id;
        this.name = name;
    }

    public int id() {
        return id;
    }

    public String name() {
        return name;
    }

    public NetSwitch owner() {
        return sw;
    }

    /** Whether the port forwards (administratively up); a port that is down neither sends nor receives. */
    public boolean adminUp() {
        return adminUp;
    }

    void adminUp(boolean up) {
        adminUp = up;
    }

    /** A receive queue started ({@code q}) or stopped (null) for pair {@code pair}; the queues' threads call it, one at a time. */
    synchronized void receiveQueue(int pair, RxQueue q) {
        rx.set(pair, q);
        int n = 0;
        while (n < MAX_PAIRS && rx.get(n) != null) {
            n++;
        }
        pairsRunning = n;
    }

    void tap(TapPort t) {
        tap = t;
    }

    /**
     * Hands {@code f} to one of this port's receive queues (or writes it to the host, for a tap
     * uplink); true when a receive queue holds it now (it retained the frame), false when it was
     * written at once or dropped (counted).
     */
    boolean deliver(Frame f) {
        TapPort t = tap;
        if (t != null) {
            if (!adminUp || !t.write(f)) {
                rxDropped.incrementAndGet();
                return false;
            }
            return false; // written at once: nothing to wait for
        }
        int pairs = pairsRunning;
        if (!adminUp || pairs == 0) {
            rxDropped.incrementAndGet();
            return false;
        }
        RxQueue q = rx.get(f.pair < pairs ? f.pair : f.pair % pairs);
        if (q == null) {
            rxDropped.incrementAndGet();
            return false;
        }
        if (q.placeNow(f)) {
            return false; // in the receiver's ring already (or dropped there, counted): nothing to wait for
        }
        if (!q.offer(f)) {
            rxDropped.incrementAndGet();
            return false;
        }
        return true;
    }

    void countFiltered() {
        filtered.incrementAndGet();
    }

    /** Pair {@code pair}'s transmit queue's counters (the same cell across its restarts). */
    Traffic txTraffic(int pair) {
        return cell(sent, pair);
    }

    /** Pair {@code pair}'s receive queue's counters (the same cell across its restarts). */
    Traffic rxTraffic(int pair) {
        return cell(received, pair);
    }

    private static Traffic cell(AtomicReferenceArray<Traffic> byPair, int pair) {
        Traffic t = byPair.get(pair);
        if (t == null) {
            byPair.compareAndSet(pair, null, new Traffic());
            t = byPair.get(pair);
        }
        return t;
    }

    /** What the cells counted, frames or bytes. */
    private static long sum(AtomicReferenceArray<Traffic> cells, boolean bytes) {
        long n = 0;
        for (int i = 0; i < cells.length(); i++) {
            Traffic t = cells.get(i);
            if (t != null) {
                n += bytes ? t.bytes() : t.frames();
            }
        }
        return n;
    }

    public long txFrames() {
        return txFrames.get() + sum(sent, false);
    }

    public long txBytes() {
        return txBytes.get() + sum(sent, true);
    }

    public long txDropped() {
        return txDropped.get();
    }

    public long rxFrames() {
        return rxFrames.get() + sum(received, false);
    }

    public long rxBytes() {
        return rxBytes.get() + sum(received, true);
    }

    public long rxDropped() {
        return rxDropped.get();
    }

    /** One line of counters. */
    public String stats() {
        return "port " + id + " (" + name + ") on " + sw.name() + ": tx " + txFrames() + " frames " + txBytes() + " bytes, "
                + txDropped.get() + " dropped; rx " + rxFrames() + " frames " + rxBytes() + " bytes, " + rxDropped.get()
                + " dropped";
    }

    @Override
    public String toString() {
        return "port " + id + " (" + name + ")";
    }
}
