package org.jvirtio.net;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A switch's forwarding table: which port each source MAC address was last seen on, learned from
 * the frames ports send and forgotten after an aging time. Read and written by every port's
 * transmit thread without locks and without allocation: each entry is one 64-bit word (the
 * 48-bit address and the port), claimed and moved with compare-and-set; a lookup reads each word
 * once, so it never pairs one address with another's port. Open addressing with a short probe;
 * an entry is never removed, it ages: an expired one reads as absent and is reused by the next
 * address that needs its place. A table full of live addresses learns no more (those are then
 * flooded, as a switch does when its table overflows).
 */
final class MacTable {
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final int PROBE = 16;

    private final long[] words;
    /** When each entry was last seen, in seconds on {@link #now}'s scale (plain: a stale read only ages an entry a little early or late). */
    private final int[] seen;
    private final int mask;
    private final int agingSeconds;

    /**
     * @param capacity     entries, rounded up to a power of two
     * @param agingSeconds how long an address stays learned without being seen again
     */
    MacTable(int capacity, int agingSeconds) {
        int n = Integer.highestOneBit(Math.max(16, capacity - 1) << 1);
        words = new long[n];
        seen = new int[n];
        mask = n - 1;
        this.agingSeconds = agingSeconds;
    }

    private static long word(long mac, int port) {
        return (mac << 16) | (port & 0xffff);
    }

    private static int hash(long mac) {
        long h = mac * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 40);
    }

    private boolean live(int i, int now) {
        return now - seen[i] < agingSeconds;
    }

    /**
     * The port {@code mac} was last seen on, or 0 when it is not known (or aged out).
     *
     * @param now seconds (any origin, as long as the same for every call)
     */
    int lookup(long mac, int now) {
        int i = hash(mac) & mask;
        for (int k = 0; k < PROBE; k++, i = (i + 1) & mask) {
            long w = (long) WORDS.getAcquire(words, i);
            if (w == 0) {
                return 0;
            }
            if (w >>> 16 == mac) {
                return live(i, now) ? (int) (w & 0xffff) : 0;
            }
        }
        return 0;
    }

    /** {@code mac} was seen sending on {@code port} (1 to 65535). */
    void learn(long mac, int port, int now) {
        long want = word(mac, port);
        int i = hash(mac) & mask;
        int reusable = -1;
        for (int k = 0; k < PROBE; k++, i = (i + 1) & mask) {
            long w = (long) WORDS.getAcquire(words, i);
            if (w != 0 && w >>> 16 == mac) {
                if (w != want) {
                    WORDS.compareAndSet(words, i, w, want); // moved to another port (a migration), or a spoofer: the last wins
                }
                if (seen[i] != now) {
                    seen[i] = now; // once a second at most: no store to a line other ports' threads read, per frame
                }
                return;
            }
            if (w == 0) {
                if (reusable < 0 && WORDS.compareAndSet(words, i, 0L, want)) {
                    seen[i] = now;
                    return;
                }
                break;
            }
            if (reusable < 0 && !live(i, now)) {
                reusable = i;
            }
        }
        if (reusable >= 0) {
            long old = (long) WORDS.getAcquire(words, reusable);
            if (!live(reusable, now) && WORDS.compareAndSet(words, reusable, old, want)) {
                seen[reusable] = now;
            }
        }
    }

    /** Forgets every address learned on {@code port} (it went away). */
    void forget(int port) {
        for (int i = 0; i < words.length; i++) {
            long w = (long) WORDS.getAcquire(words, i);
            if (w != 0 && (int) (w & 0xffff) == port) {
                seen[i] = Integer.MIN_VALUE / 2; // aged: reused by the next address that needs the place
            }
        }
    }

    /** Live entries (for statistics). */
    int size(int now) {
        int n = 0;
        for (int i = 0; i < words.length; i++) {
            if ((long) WORDS.getAcquire(words, i) != 0 && live(i, now)) {
                n++;
            }
        }
        return n;
    }
}
