package org.jvirtio.net;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.transport.vhostuser.DriverQueue;
import org.jvirtio.transport.vhostuser.DriverSession;

/** A guest's virtio-net driver for tests: one queue pair of a port, frames sent and received through the driver kit. */
final class NetDriver implements AutoCloseable {
    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final int SIZE = 64;

    final DriverSession s;
    final long features;
    final DriverQueue rx;
    final DriverQueue tx;
    private final long txBufs;
    private final long rxBufs;
    private final int rxBufSize;
    private int txNext;
    /** Used buffers too short to hold a frame (answered empty: the device failed on them). */
    int lengthErrors;
    private int rxNext;

    /** A received frame: its header fields and bytes (over one chain or several). */
    record Received(int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset, int numBuffers, byte[] frame) {
    }

    NetDriver(Path socket, long wanted, int rxBufSize) throws IOException {
        this(DriverSession.connect(socket, 8 << 20), wanted, rxBufSize);
    }

    /** Over a session of the caller's (memory it made: at least 8 MiB). */
    NetDriver(DriverSession session, long wanted, int rxBufSize) throws IOException {
        s = session;
        features = s.negotiate(wanted);
        rx = s.queue(0, SIZE);
        tx = s.queue(1, SIZE);
        this.rxBufSize = rxBufSize;
        txBufs = s.allocate((long) SIZE * 70_000, 4096);
        rxBufs = s.allocate((long) SIZE * rxBufSize, 4096);
    }

    boolean has(int bit) {
        return (features & (1L << bit)) != 0;
    }

    GuestMemory memory() {
        return s.memory();
    }

    /** Offers {@code n} receive buffers of the size given at construction. */
    void post(int n) {
        for (int i = 0; i < n; i++) {
            int b = rxNext++ % SIZE;
            if (rx.ring().add(new long[] {rxBufs + (long) b * rxBufSize}, new int[] {rxBufSize}, 1, 0, b) < 0) {
                throw new IllegalStateException("receive ring full");
            }
        }
        rx.publish();
    }

    /** The guest address of the transmit buffer the next send uses. */
    long nextTxBuffer() {
        return txBufs + (long) (txNext % SIZE) * 70_000;
    }

    /** Sends {@code frame} with a zero header, running {@code beforePublish} after it is written and before the device sees it. */
    void sendThen(byte[] frame, Runnable beforePublish) {
        int b = txNext++ % SIZE;
        long at = txBufs + (long) b * 70_000;
        s.memory().write(at, MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]));
        s.memory().write(at + VirtioNet.HDR_SIZE, MemorySegment.ofArray(frame));
        if (tx.ring().add(new long[] {at}, new int[] {VirtioNet.HDR_SIZE + frame.length}, 1, 1, b) < 0) {
            throw new IllegalStateException("transmit ring full");
        }
        beforePublish.run();
        tx.publish();
    }

    /** Sends {@code frame} with a header (flags, gso type, hdr_len, gso size, csum start, csum offset), in one buffer. */
    long send(byte[] frame, int... hdr) {
        int b = txNext++ % SIZE;
        long at = txBufs + (long) b * 70_000;
        MemorySegment m = MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]);
        m.set(ValueLayout.JAVA_BYTE, 0, (byte) (hdr.length > 0 ? hdr[0] : 0));
        m.set(ValueLayout.JAVA_BYTE, 1, (byte) (hdr.length > 1 ? hdr[1] : 0));
        for (int i = 2; i < 6; i++) {
            m.set(LE16, 2L * (i - 1), (short) (hdr.length > i ? hdr[i] : 0));
        }
        s.memory().write(at, m);
        s.memory().write(at + VirtioNet.HDR_SIZE, MemorySegment.ofArray(frame));
        if (tx.ring().add(new long[] {at}, new int[] {VirtioNet.HDR_SIZE + frame.length}, 1, 1, b) < 0) {
            throw new IllegalStateException("transmit ring full");
        }
        tx.publish();
        return b;
    }

    /** Sends {@code frame} as Linux does without can_push: the 12-byte header in a buffer of its own, the frame in two more. */
    void sendInPieces(byte[] frame) {
        int b = txNext++ % SIZE;
        long at = txBufs + (long) b * 70_000;
        s.memory().write(at, MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]));
        int half = frame.length / 2;
        s.memory().write(at + 64, MemorySegment.ofArray(java.util.Arrays.copyOf(frame, half)));
        s.memory().write(at + 4096, MemorySegment.ofArray(java.util.Arrays.copyOfRange(frame, half, frame.length)));
        if (tx.ring().add(new long[] {at, at + 64, at + 4096}, new int[] {VirtioNet.HDR_SIZE, half, frame.length - half}, 3, 3, b) < 0) {
            throw new IllegalStateException("transmit ring full");
        }
        tx.publish();
    }

    /** Sends raw bytes as one readable chain (for malformed chains). */
    void sendRaw(byte[] bytes) {
        int b = txNext++ % SIZE;
        long at = txBufs + (long) b * 70_000;
        s.memory().write(at, MemorySegment.ofArray(bytes));
        tx.ring().add(new long[] {at}, new int[] {bytes.length}, 1, 1, b);
        tx.publish();
    }

    /** Transmit chains returned within {@code millis}. */
    int sent(int want, long millis) throws IOException {
        int[] n = {0};
        long end = System.currentTimeMillis() + millis;
        while (n[0] < want && System.currentTimeMillis() < end) {
            tx.awaitUsed((h, t, len) -> n[0]++, Math.max(1, end - System.currentTimeMillis()));
        }
        return n[0];
    }

    /** Frames received within {@code millis} (at most {@code want}), merged buffers joined. */
    List<Received> receive(int want, long millis) throws IOException {
        List<long[]> used = new ArrayList<>();
        List<Received> out = new ArrayList<>();
        long end = System.currentTimeMillis() + millis;
        while (out.size() < want && System.currentTimeMillis() < end) {
            rx.awaitUsed((h, t, len) -> used.add(new long[] {t, len}), Math.max(1, end - System.currentTimeMillis()));
            while (!used.isEmpty()) {
                long[] first = used.get(0);
                if (first[1] < VirtioNet.HDR_SIZE + VirtioNet.ETH_HLEN) {
                    used.remove(0); // as Linux: "rx error: len too small", the buffer dropped
                    lengthErrors++;
                    continue;
                }
                MemorySegment hdr = read(rxBufs + first[0] * rxBufSize, VirtioNet.HDR_SIZE);
                int nb = has(VirtioNet.F_MRG_RXBUF) ? hdr.get(LE16, 10) & 0xffff : 1;
                if (used.size() < nb) {
                    break; // the rest comes with the next interrupt (published together: should not happen)
                }
                java.io.ByteArrayOutputStream data = new java.io.ByteArrayOutputStream();
                for (int i = 0; i < nb; i++) {
                    long[] u = used.remove(0);
                    int skip = i == 0 ? VirtioNet.HDR_SIZE : 0;
                    byte[] bytes = read(rxBufs + u[0] * rxBufSize + skip, (int) u[1] - skip).toArray(ValueLayout.JAVA_BYTE);
                    data.writeBytes(bytes);
                }
                out.add(new Received(hdr.get(ValueLayout.JAVA_BYTE, 0) & 0xff, hdr.get(ValueLayout.JAVA_BYTE, 1) & 0xff,
                        hdr.get(LE16, 2) & 0xffff, hdr.get(LE16, 4) & 0xffff, hdr.get(LE16, 6) & 0xffff, hdr.get(LE16, 8) & 0xffff,
                        hdr.get(LE16, 10) & 0xffff, data.toByteArray()));
            }
        }
        return out;
    }

    private MemorySegment read(long at, int n) {
        MemorySegment m = MemorySegment.ofArray(new byte[n]);
        s.memory().read(at, m);
        return m;
    }

    /** An Ethernet frame: dst, src, type 0x0800 (not a real IP packet unless the payload is one), {@code payload} bytes. */
    static byte[] frame(long dst, long src, int payload) {
        byte[] f = new byte[VirtioNet.ETH_HLEN + payload];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) (dst >>> (8 * (5 - i)));
            f[6 + i] = (byte) (src >>> (8 * (5 - i)));
        }
        f[12] = 0x08;
        for (int i = VirtioNet.ETH_HLEN; i < f.length; i++) {
            f[i] = (byte) (i * 31 + (src & 0xff));
        }
        return f;
    }

    @Override
    public void close() {
        s.close();
    }
}
