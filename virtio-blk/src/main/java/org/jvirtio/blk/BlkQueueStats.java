package org.jvirtio.blk;

/** Counters of one queue, written by its thread only, read by anyone (e.g. --stats). */
public final class BlkQueueStats {
    volatile long requests;
    volatile long bytes;
    volatile long errors;

    public long requests() {
        return requests;
    }

    public long bytes() {
        return bytes;
    }

    public long errors() {
        return errors;
    }
}
