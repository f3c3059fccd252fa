package org.jvirtio.net;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicLong;

import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.linux.Native;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A switch's uplink: a host tap device as one more port, so guests reach the host and what lies
 * beyond it. Frames the host sends are read (with their virtio-net header: the kernel hands over
 * TSO frames and partial checksums, which the switch passes on or finishes per port) into a pool
 * of 64 buffers and forwarded like a guest's, receivers copying from the buffer; a buffer is read
 * into again once every receiver is done with it (none free: the host's frame waits in the tap's
 * queue, which the kernel bounds). Frames for the host are written with one writev straight from
 * the sender's guest memory, on the sender's thread.
 *
 * <p>Its reading thread is the switch's, not a device's: it waits in poll(2) on the tap.
 */
final class TapPort implements FrameOwner, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TapPort.class);
    static final int SLOTS = 64;
    static final int SLOT = 65536 + VirtioNet.HDR_SIZE + 64;
    private static final int MAX_IOV = 1024;

    private final Tap tap;
    private final SwitchPort port;
    private final MemoryMapping pool;
    private final GuestMemory memory;
    private final Frame[] frames = new Frame[SLOTS];
    private final PoolChain[] chains = new PoolChain[SLOTS];
    /** Each buffer of the pool as a segment of its own, made once (a read per frame allocates nothing). */
    private final MemorySegment[] buffers = new MemorySegment[SLOTS];
    /** One bit per buffer that is free to read into. */
    private final AtomicLong free = new AtomicLong(-1L);
    private final MemorySegment vhdr = MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]);
    private final Thread reader;
    private volatile boolean closed;
    /** Senders inside {@link #write}: close waits for them before it closes the tap's fd. */
    private final java.util.concurrent.atomic.AtomicInteger writing = new java.util.concurrent.atomic.AtomicInteger();
    private final ThreadLocal<Writer> writers = ThreadLocal.withInitial(Writer::new);

    /** A pool buffer as a chain of one readable buffer, so frames from the host travel as a guest's do. */
    static final class PoolChain extends DescriptorChain {
        PoolChain() {
            super(-1);
        }

        void set(GuestMemory memory, int slot, int length) {
            reset(memory, slot);
            append(0, (long) slot * SLOT, length, false);
        }
    }

    /** Per sending thread: the iovecs and errno room of a writev. */
    private static final class Writer {
        final Arena arena = Arena.ofAuto();
        final MemorySegment iov = arena.allocate(16L * MAX_IOV, 8);
        final MemorySegment hdr = arena.allocate(VirtioNet.HDR_SIZE + 12, 8);
        final MemorySegment state = Native.errnoState(arena);
    }

    TapPort(SwitchPort port, Tap tap) throws IOException {
        this.port = port;
        this.tap = tap;
        this.pool = MemoryMapping.memfd("jvirtio-tap", (long) SLOTS * SLOT);
        this.memory = GuestMemory.of(GuestRegion.of(0, pool));
        pool.release();
        for (int i = 0; i < SLOTS; i++) {
            frames[i] = new Frame(this, i);
            chains[i] = new PoolChain();
            buffers[i] = pool.segment().asSlice((long) i * SLOT, SLOT);
        }
        port.tap(this);
        reader = Thread.ofPlatform().name("jvirtio-" + tap.name()).daemon().start(this::readLoop);
    }

    SwitchPort port() {
        return port;
    }

    private int takeSlot() {
        while (true) {
            long f = free.get();
            if (f == 0) {
                return -1;
            }
            int slot = Long.numberOfTrailingZeros(f);
            if (free.compareAndSet(f, f & ~(1L << slot))) {
                return slot;
            }
        }
    }

    private void giveSlot(int slot) {
        long bit = 1L << slot;
        long f;
        do {
            f = free.get();
        } while (!free.compareAndSet(f, f | bit));
    }

    /** The last receiver is done with a frame the host sent: its buffer is free again. */
    @Override
    public void sent(Frame f) {
        giveSlot(f.slot);
    }

    private void readLoop() {
        MemorySegment state;
        try (Arena arena = Arena.ofConfined()) {
            state = Native.errnoState(arena);
            while (!closed) {
                try {
                    if (!org.jvirtio.api.linux.Libc.pollIn(tap.fd(), 200)) {
                        continue;
                    }
                } catch (IOException e) {
                    LOG.error("{}: poll failed, the uplink stops: {}", tap, e.toString());
                    return;
                }
                while (!closed) {
                    int slot = takeSlot();
                    if (slot < 0) {
                        Thread.onSpinWait(); // every buffer is with a receiver: they are copied within one wake-up
                        break;
                    }
                    long n = tap.read(state, buffers[slot]);
                    if (n <= 0) {
                        giveSlot(slot);
                        if (n < 0) {
                            LOG.warn("{}: read failed: {}", tap, org.jvirtio.api.linux.Libc.strerror((int) -n));
                        }
                        break;
                    }
                    forward(slot, (int) n);
                }
            }
        }
    }

    private void forward(int slot, int n) {
        Frame f = frames[slot];
        int length = n - VirtioNet.HDR_SIZE;
        MemorySegment all = pool.segment();
        long at = (long) slot * SLOT;
        if (length < VirtioNet.ETH_HLEN) {
            port.txDropped.incrementAndGet();
            giveSlot(slot);
            return;
        }
        MemorySegment.copy(all, at, vhdr, 0, VirtioNet.HDR_SIZE);
        f.hdr.read(vhdr, 0);
        String bad = FrameChecks.check(f.hdr, length, -1L, VirtioNet.MAX_GSO_FRAME);
        if (bad != null) {
            port.txDropped.incrementAndGet();
            giveSlot(slot);
            return;
        }
        int h = Math.min(SwitchFrame.HEAD, length);
        MemorySegment.copy(all, at + VirtioNet.HDR_SIZE, f.headSegment, 0, h);
        f.headLength = h;
        chains[slot].set(memory, slot, n);
        f.begin(chains[slot], port, 0, length);
        f.dst = TxQueue.destination(f.head);
        f.src = TxQueue.source(f.head);
        port.txFrames.incrementAndGet();
        port.txBytes.addAndGet(length);
        port.owner().forward(f);
        if (f.releaseOwn()) {
            giveSlot(slot);
        }
    }

    /** Writes a frame another port sent to the host, on the sender's thread; false (counted by the caller) when it could not. */
    boolean write(Frame f) {
        writing.incrementAndGet();
        try {
            return !closed && writeNow(f);
        } finally {
            writing.decrementAndGet();
        }
    }

    private boolean writeNow(Frame f) {
        Writer w = writers.get();
        DescriptorChain c = f.chain;
        NetHeader h = f.hdr;
        NetHeader.write(w.hdr, 0, h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset, 0);
        int k = 0;
        k = iov(w.iov, k, w.hdr.address(), VirtioNet.HDR_SIZE);
        long skip = Frame.DATA;
        if (f.rewritten) {
            MemorySegment.copy(f.headSegment, 0, w.hdr, VirtioNet.HDR_SIZE, 12);
            k = iov(w.iov, k, w.hdr.address() + VirtioNet.HDR_SIZE, 12);
            skip += 12;
        }
        for (int i = 0; i < c.readableBufferCount(); i++) {
            long len = Integer.toUnsignedLong(c.bufferLength(i));
            if (skip >= len) {
                skip -= len;
                continue;
            }
            if (k == MAX_IOV) {
                return false;
            }
            k = iov(w.iov, k, c.bufferAddress(i) + skip, len - skip);
            skip = 0;
        }
        long r = tap.writev(w.state, w.iov, k);
        if (r < 0) {
            return false;
        }
        port.rxFrames.incrementAndGet();
        port.rxBytes.addAndGet(f.length);
        return true;
    }

    private static int iov(MemorySegment iov, int k, long address, long length) {
        iov.set(ValueLayout.JAVA_LONG, 16L * k, address);
        iov.set(ValueLayout.JAVA_LONG, 16L * k + 8, length);
        return k + 1;
    }

    @Override
    public void close() {
        closed = true;
        try {
            reader.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        port.tap(null);
        port.owner().leave(port);
        while (writing.get() != 0) {
            Thread.onSpinWait(); // a sender in its writev (which never blocks: the fd is non-blocking)
        }
        tap.close();
        // Frames from the pool may still be with receivers for a moment; the mapping stays until none is.
        long deadline = System.nanoTime() + 2_000_000_000L;
        while (free.get() != -1L && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        if (free.get() == -1L) {
            memory.release();
        }
    }

    @Override
    public String toString() {
        return tap + " on " + port.owner();
    }
}
