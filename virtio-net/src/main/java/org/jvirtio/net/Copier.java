package org.jvirtio.net;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.jvirtio.api.DescriptorChain;

/**
 * Copies a frame from the sender's transmit chain (its readable buffers, after the virtio
 * header) into receive chains (their writable buffers), buffer to buffer with
 * {@link MemorySegment#copy}: one copy, guest memory to guest memory, across however the two
 * drivers split their buffers. One per receive queue (its thread's), reused.
 */
final class Copier {
    // source: a chain's readable buffers
    private DescriptorChain src;
    private int sBuf;
    private long sOff;
    private int sEnd;
    // destination: a chain's writable buffers
    private DescriptorChain dst;
    private int dBuf;
    private long dOff;
    private long dLeft;

    /** Reads {@code c}'s readable bytes from {@code skip} on. */
    void source(DescriptorChain c, long skip) {
        src = c;
        sBuf = 0;
        sOff = 0;
        sEnd = c.readableBufferCount();
        skipSource(skip);
    }

    void skipSource(long n) {
        while (n > 0 && sBuf < sEnd) {
            long len = Integer.toUnsignedLong(src.bufferLength(sBuf)) - sOff;
            if (n < len) {
                sOff += n;
                return;
            }
            n -= len;
            sBuf++;
            sOff = 0;
        }
    }

    /** Writes into {@code c}'s writable buffers from their start. */
    void destination(DescriptorChain c) {
        dst = c;
        dBuf = c.readableBufferCount();
        dOff = 0;
        dLeft = c.writableLength();
    }

    /** Writable bytes left in the destination chain. */
    long room() {
        return dLeft;
    }

    /** Copies {@code n} bytes (at most {@link #room()}) from the source; returns how many it copied (fewer only if the source ended). */
    long copy(long n) {
        long done = 0;
        while (done < n && sBuf < sEnd && dLeft > 0) {
            long sLen = Integer.toUnsignedLong(src.bufferLength(sBuf)) - sOff;
            long dLen = Integer.toUnsignedLong(dst.bufferLength(dBuf)) - dOff;
            long k = Math.min(n - done, Math.min(sLen, dLen));
            MemorySegment.copy(src.bufferRegion(sBuf), src.bufferOffset(sBuf) + sOff, dst.bufferRegion(dBuf), dst.bufferOffset(dBuf) + dOff, k);
            done += k;
            dLeft -= k;
            if ((sOff += k) == Integer.toUnsignedLong(src.bufferLength(sBuf))) {
                sBuf++;
                sOff = 0;
            }
            advanceDst(k);
        }
        return done;
    }

    /**
     * Writes a virtio-net header ({@link NetHeader#low}, {@link NetHeader#high}) into the
     * destination: two stores when the buffer at hand holds all 12 bytes (as every driver's
     * does), else through {@code spare} (12 bytes).
     */
    void writeHeader(long low, int high, MemorySegment spare) {
        long at = dOff;
        if (dLeft >= VirtioNet.HDR_SIZE && Integer.toUnsignedLong(dst.bufferLength(dBuf)) - at >= VirtioNet.HDR_SIZE) {
            MemorySegment r = dst.bufferRegion(dBuf);
            long p = dst.bufferOffset(dBuf) + at;
            r.set(NetHeader.LE_U64, p, low);
            r.set(NetHeader.LE_U32, p + 8, high);
            dLeft -= VirtioNet.HDR_SIZE;
            advanceDst(VirtioNet.HDR_SIZE);
            return;
        }
        spare.set(NetHeader.LE_U64, 0, low);
        spare.set(NetHeader.LE_U32, 8, high);
        write(spare, 0, VirtioNet.HDR_SIZE);
    }

    /** Writes {@code n} bytes of {@code from} at {@code offset} into the destination (a header, a checksum). */
    long write(MemorySegment from, long offset, long n) {
        long done = 0;
        while (done < n && dLeft > 0) {
            long dLen = Integer.toUnsignedLong(dst.bufferLength(dBuf)) - dOff;
            long k = Math.min(n - done, dLen);
            MemorySegment.copy(from, offset + done, dst.bufferRegion(dBuf), dst.bufferOffset(dBuf) + dOff, k);
            done += k;
            dLeft -= k;
            advanceDst(k);
        }
        return done;
    }

    private void advanceDst(long k) {
        dOff += k;
        if (dOff == Integer.toUnsignedLong(dst.bufferLength(dBuf))) {
            dBuf++;
            dOff = 0;
        }
    }

    /** Reads {@code n} readable bytes of {@code c} from {@code from} on into {@code to} (fewer if the chain ends: the rest left as is). */
    static void read(DescriptorChain c, long from, byte[] to, int n) {
        MemorySegment dst = MemorySegment.ofArray(to);
        int end = c.readableBufferCount();
        long skip = from;
        int done = 0;
        for (int i = 0; i < end && done < n; i++) {
            long len = Integer.toUnsignedLong(c.bufferLength(i));
            if (skip >= len) {
                skip -= len;
                continue;
            }
            long k = Math.min(len - skip, n - done);
            MemorySegment.copy(c.bufferRegion(i), c.bufferOffset(i) + skip, dst, done, k);
            done += (int) k;
            skip = 0;
        }
    }

    /**
     * The Internet checksum (RFC 1071) of {@code n} readable bytes of {@code c} from {@code from}
     * on, not complemented (a 16-bit ones'-complement sum, folded), as the bytes are now.
     */
    static int sum(DescriptorChain c, long from, long n) {
        long acc = 0;
        boolean odd = false; // the next byte is the low byte of a 16-bit word
        int end = c.readableBufferCount();
        long skip = from;
        for (int i = 0; i < end && n > 0; i++) {
            long len = Integer.toUnsignedLong(c.bufferLength(i));
            if (skip >= len) {
                skip -= len;
                continue;
            }
            MemorySegment r = c.bufferRegion(i);
            long p = c.bufferOffset(i) + skip;
            long k = Math.min(len - skip, n);
            skip = 0;
            n -= k;
            long q = p + k;
            if (odd && p < q) {
                acc += r.get(ValueLayout.JAVA_BYTE, p++) & 0xff;
                odd = false;
            }
            for (; q - p >= 8; p += 8) {
                long w = r.get(BE_LONG, p);
                acc += (w >>> 48) + ((w >>> 32) & 0xffff) + ((w >>> 16) & 0xffff) + (w & 0xffff);
            }
            for (; q - p >= 2; p += 2) {
                acc += r.get(BE_SHORT, p) & 0xffff;
            }
            if (p < q) {
                acc += (r.get(ValueLayout.JAVA_BYTE, p) & 0xff) << 8;
                odd = true;
            }
        }
        while ((acc >>> 16) != 0) {
            acc = (acc & 0xffff) + (acc >>> 16);
        }
        return (int) acc;
    }

    private static final ValueLayout.OfLong BE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfShort BE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);
}
