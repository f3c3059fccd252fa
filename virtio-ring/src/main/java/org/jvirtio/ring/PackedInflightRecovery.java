package org.jvirtio.ring;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.function.IntUnaryOperator;

import static org.jvirtio.ring.PackedInflight.*;

/**
 * A successor's side of {@link PackedInflight}: the spec's reconnect steps (commit or roll back
 * the last return from the ring's flags at old_used_idx, entries on the free list not in flight),
 * every chain checked, the free list rebuilt from every entry no chain holds, and the chains to
 * resubmit in the order they were taken.
 */
final class PackedInflightRecovery {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private PackedInflightRecovery() {
    }

    /** Takes over {@code t}'s region; null, or why it is inconsistent (then {@code t} is discarded). */
    static String recover(PackedInflight t, int version, IntUnaryOperator ringFlags) {
        if (version != VERSION) {
            return "version " + version;
        }
        long features = t.r.get(U64, FEATURES);
        if (features != 0) {
            return "features 0x" + Long.toHexString(features);
        }
        int n = t.u16(DESC_NUM);
        if (n != t.descNum) {
            return "desc_num " + n + " for a queue of " + t.descNum;
        }
        int fh = t.u16(FREE_HEAD);
        int ofh = t.u16(OLD_FREE_HEAD);
        int ui = t.u16(USED_IDX);
        int oui = t.u16(OLD_USED_IDX);
        int uw = t.u8(USED_WRAP);
        int ouw = t.u8(OLD_USED_WRAP);
        if (fh > t.descNum || ofh > t.descNum) {
            return "free_head " + fh + ", old_free_head " + ofh + " in a region of " + t.descNum;
        }
        if (ui >= t.ringSize || oui >= t.ringSize || uw > 1 || ouw > 1) {
            return "used_idx " + ui + "/" + uw + ", old_used_idx " + oui + "/" + ouw + " for a ring of " + t.ringSize;
        }
        if (ui != oui || uw != ouw) {
            // The predecessor died while returning a buffer. If the descriptor at old_used_idx no
            // longer says available for old_used_wrap_counter, its used descriptor reached the
            // ring (the driver may have seen it): commit. Otherwise roll back.
            int flags = ringFlags.applyAsInt(oui);
            if (!PackedRingLayout.isAvailable(flags, ouw == 1)) {
                ofh = fh;
                oui = ui;
                ouw = uw;
            }
        }
        t.usedIdx = oui;
        t.usedWrap = ouw == 1;
        // Entries on the free list are not in flight, whatever their flag says (a chain the
        // predecessor was taking when it died, rolled back; a buffer it returned, committed).
        boolean[] held = new boolean[t.descNum];
        for (int e = ofh; e < t.descNum; e = t.u16(desc(e) + D_NEXT)) {
            if (held[e]) {
                return "the free list runs in a circle at entry " + e;
            }
            held[e] = true;
        }
        boolean[] free = held.clone();
        int[] heads = new int[t.descNum];
        long[] counters = new long[t.descNum];
        int nHeads = 0;
        int inFlight = 0;
        for (int h = 0; h < t.descNum; h++) {
            int f = t.u8(desc(h) + D_INFLIGHT);
            if (f > 1) {
                return "entry " + h + " inflight flag " + f;
            }
            if (f == 0 || free[h]) {
                continue;
            }
            int len = t.u16(desc(h) + D_NUM);
            if (len < 1 || len > t.ringSize) {
                return "the chain at entry " + h + " has " + len + " descriptors, for a ring of " + t.ringSize;
            }
            int e = h;
            for (int k = 0; ; k++) {
                if (e >= t.descNum || held[e]) {
                    return "descriptor " + k + " of the chain at entry " + h + " is entry " + e + ", out of range, free or another chain's";
                }
                held[e] = true;
                if (k == len - 1) {
                    break;
                }
                int to = t.u16(desc(e) + D_NEXT);
                t.next[e] = to;
                e = to;
            }
            if (t.u16(desc(h) + D_LAST) != e) {
                return "the chain at entry " + h + " ends at entry " + e + ", its last says " + t.u16(desc(h) + D_LAST);
            }
            int id = t.u16(desc(e) + D_ID);
            if (id >= t.ringSize) {
                return "the chain at entry " + h + " has buffer id " + id + ", for a ring of " + t.ringSize;
            }
            if (t.entryOf[id] >= 0) {
                return "buffer id " + id + " in flight twice (entries " + t.entryOf[id] + " and " + h + ")";
            }
            t.entryOf[id] = h;
            t.idOf[h] = id;
            t.num[h] = len;
            t.last[h] = e;
            inFlight += len;
            counters[nHeads] = t.r.get(U64, desc(h) + D_COUNTER);
            heads[nHeads++] = h;
        }
        if (inFlight > t.ringSize) {
            return inFlight + " descriptors in flight in a ring of " + t.ringSize;
        }
        Integer[] order = new Integer[nHeads];
        for (int k = 0; k < nHeads; k++) {
            order[k] = k;
        }
        Arrays.sort(order, (a, b) -> Long.compareUnsigned(counters[a], counters[b]));
        long max = -1;
        for (int k = 0; k < nHeads; k++) {
            long c = counters[order[k]];
            if (k > 0 && c == counters[order[k - 1]]) {
                return "two chains taken at the same count " + Long.toUnsignedString(c);
            }
            t.resubmit[k] = heads[order[k]];
            max = c;
        }
        t.resubmitCount = nHeads;
        t.counter = nHeads == 0 ? 0 : max + 1;
        // Every entry no chain holds goes back on the free list, flag cleared: nothing leaks.
        int tail = t.descNum;
        for (int e = t.descNum - 1; e >= 0; e--) {
            boolean inChain = held[e] && !free[e];
            if (!inChain) {
                t.r.set(ValueLayout.JAVA_BYTE, desc(e) + D_INFLIGHT, (byte) 0);
                t.next[e] = tail;
                t.r.set(U16, desc(e) + D_NEXT, (short) tail);
                tail = e;
            }
        }
        t.freeHead = tail;
        t.writeHeader();
        return null;
    }
}
