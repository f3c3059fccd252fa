package org.jvirtio.blk.dataplane;

/**
 * The ranges of the deallocations (DISCARD, WRITE_ZEROES) each request has in flight, by tag:
 * offset, length and mode, kept so that an operation the kernel answers with -EAGAIN, or one the
 * file system cannot do as asked, can be issued again. At most {@link #MAX} per request, as
 * many as the device ever allows in one. Nothing is allocated per request.
 */
final class DeallocRanges {
    /** Ranges one request may have. */
    static final int MAX = 64;

    private final int[] next;
    private final long[] args;

    DeallocRanges(int depth) {
        this.next = new int[depth];
        this.args = new long[depth * MAX * 3];
    }

    /**
     * Keeps a range for request {@code tag}; returns its index, or -1 when the request has
     * {@link #MAX} already. {@code fresh}: nothing of the tag is in flight, so its earlier
     * ranges are done with.
     */
    int add(int tag, boolean fresh, long offset, long length, int mode) {
        if (fresh) {
            next[tag] = 0;
        }
        int i = next[tag];
        if (i >= MAX) {
            return -1;
        }
        next[tag] = i + 1;
        int base = base(tag, i);
        args[base] = offset;
        args[base + 1] = length;
        args[base + 2] = mode;
        return i;
    }

    long offset(int tag, int i) {
        return args[base(tag, i)];
    }

    long length(int tag, int i) {
        return args[base(tag, i) + 1];
    }

    int mode(int tag, int i) {
        return (int) args[base(tag, i) + 2];
    }

    private static int base(int tag, int i) {
        return (tag * MAX + i) * 3;
    }
}
