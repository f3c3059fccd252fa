package org.jvirtio.transport.vhostuser;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.QueueDriver;

/**
 * A Java front-end with its own memfd guest memory and driver-side rings: what QEMU plus a guest
 * driver would be, for tests. Built on the driver kit ({@link DriverSession}); the fields give the
 * tests its parts.
 */
final class FrontendRig implements AutoCloseable {
    static final long MEM_SIZE = 2 << 20;
    /** Scratch buffers of {@link #echo}: above everything the session allocates for rings. */
    static final long DATA = 0x100000;

    final DriverSession session;
    final VhostUserFrontend fe;
    final GuestMemory memory;
    final List<QueueDriver> drivers = new ArrayList<>();
    final List<EventFd> kicks = new ArrayList<>();
    final List<EventFd> calls = new ArrayList<>();
    long features;

    FrontendRig(java.nio.file.Path socket) throws IOException {
        session = DriverSession.connect(socket, MEM_SIZE);
        fe = session.frontend();
        memory = session.memory();
    }

    /** Every feature but the packed layout: what the split-ring tests negotiate. */
    static final long ALL_SPLIT = ~org.jvirtio.api.VirtioFeatures.bit(org.jvirtio.api.VirtioFeatures.RING_PACKED);

    /** Negotiates everything offered but packed rings (memory is shared separately, as the tests choose). */
    FrontendRig negotiate() throws IOException {
        features = fe.negotiate(ALL_SPLIT, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
        return this;
    }

    /** Negotiates everything offered, packed rings included. */
    FrontendRig negotiatePacked() throws IOException {
        features = fe.negotiate(~0L, VhostUserProtocol.BACKEND_PROTOCOL_FEATURES);
        return this;
    }

    /** Sets up queue {@code q} of {@code size} entries with room for indirect tables of 4. */
    QueueDriver queue(int q, int size) throws IOException {
        session.useFeatures(features);
        DriverQueue dq = session.queue(q, size, 4);
        drivers.add(dq.ring());
        kicks.add(dq.kick());
        calls.add(dq.call());
        return dq.ring();
    }

    /** Sends one request of {@code n} bytes on queue q and waits for the echo; returns the used length. */
    int echo(int q, byte[] data) throws Exception {
        QueueDriver d = drivers.get(q);
        long in = DATA + q * 0x10000L;
        long out = in + 0x8000;
        memory.write(in, java.lang.foreign.MemorySegment.ofArray(data));
        int head = d.add(new long[] {in, out}, new int[] {data.length, data.length}, 2, 1, 7);
        if (head < 0) {
            throw new IllegalStateException("ring full");
        }
        if (d.publish()) {
            kicks.get(q).signal();
        }
        int[] len = {-1};
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (len[0] < 0) {
            if (d.pollUsed((h, t, l) -> len[0] = l) == 0) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("no used element on queue " + q + " within 10 s");
                }
                calls.get(q).await(100);
            }
        }
        byte[] back = new byte[data.length];
        memory.read(out, java.lang.foreign.MemorySegment.ofArray(back));
        for (int i = 0; i < data.length; i++) {
            if (back[i] != (byte) ~data[i]) {
                throw new AssertionError("byte " + i + " not echoed");
            }
        }
        return len[0];
    }

    static long ringFeatures() {
        return VirtioFeatures.RING_FEATURES;
    }

    @Override
    public void close() {
        session.close();
    }
}
