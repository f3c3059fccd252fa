package org.jvirtio.transport.vhostuser;

import java.nio.file.Path;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.PackedRingLayout;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.testkit.EchoDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Packed virtqueues over vhost-user (issue 25), with the Java front-end as QEMU with
 * {@code packed=on} would be: VIRTIO_F_RING_PACKED offered and negotiated, SET_VRING_ADDR naming
 * the descriptor ring and the two event suppression areas, SET_VRING_BASE and GET_VRING_BASE in
 * the packed encoding (next avail position and wrap counter in the low half, next used in the
 * high half), sizes that are not powers of two, a ring stopped and started again where it was.
 */
class PackedVhostUserTest {
    @TempDir
    Path dir;
    Path socket;
    VhostUserBackend backend;

    @BeforeEach
    void start() throws Exception {
        socket = dir.resolve("vu.sock");
        backend = VhostUserBackend.start(socket, new EchoDevice(2));
    }

    @AfterEach
    void stop() {
        backend.close();
    }

    @Test
    void packedIsOfferedNegotiatedAndServedOnTwoQueues() throws Exception {
        try (FrontendRig rig = new FrontendRig(socket)) {
            assertTrue(VirtioFeatures.has(rig.fe.getFeatures(), VirtioFeatures.RING_PACKED), "offered");
            rig.negotiatePacked();
            assertTrue(VirtioFeatures.has(rig.features, VirtioFeatures.RING_PACKED), "negotiated");
            rig.session.shareMemory();
            QueueDriver q0 = rig.queue(0, 16);
            QueueDriver q1 = rig.queue(1, 32);
            assertTrue(q0.packed() && q1.packed());
            // Several laps of both rings: every wrap counter flips, on both sides.
            for (int i = 0; i < 100; i++) {
                assertEquals(5, rig.echo(0, new byte[] {1, 2, 3, 4, (byte) i}));
                assertEquals(3, rig.echo(1, new byte[] {9, 8, (byte) i}));
            }
        }
    }

    @Test
    void getVringBaseGivesThePackedStateAndTheRingResumesFromIt() throws Exception {
        try (FrontendRig rig = new FrontendRig(socket)) {
            rig.negotiatePacked();
            rig.session.shareMemory();
            QueueDriver q = rig.queue(0, 8);
            for (int i = 0; i < 11; i++) {
                rig.echo(0, new byte[] {(byte) i});
            }
            // Each echo is a chain of two descriptors: 22 descriptors, two laps (the wrap
            // counter back at 1) and position 6.
            int state = rig.fe.getVringBase(0);
            int expected = PackedRingLayout.offWrap(6, true);
            assertEquals(expected | expected << 16, state, "avail and used halves, nothing in flight");
            // Started again from that state, as QEMU does after a stop: the ring goes on.
            rig.fe.setVringNum(0, 8);
            rig.fe.setVringBase(0, state);
            rig.fe.setVringAddr(0, q.descAddr(), q.availAddr(), q.usedAddr());
            rig.fe.setVringKick(0, rig.kicks.get(0));
            rig.fe.setVringCall(0, rig.calls.get(0));
            rig.fe.setVringEnable(0, true);
            for (int i = 0; i < 9; i++) {
                assertEquals(2, rig.echo(0, new byte[] {7, (byte) i}));
            }
        }
    }

    @Test
    void aPackedRingNeedNotBeAPowerOfTwo() throws Exception {
        try (FrontendRig rig = new FrontendRig(socket)) {
            rig.negotiatePacked();
            rig.session.shareMemory();
            rig.queue(0, 100);
            for (int i = 0; i < 130; i++) {
                assertEquals(2, rig.echo(0, new byte[] {(byte) i, 1}));
            }
        }
    }

    @Test
    void aPackedBasePastTheRingIsRefusedAndTheConnectionGoesOn() throws Exception {
        try (FrontendRig rig = new FrontendRig(socket)) {
            rig.negotiatePacked(); // REPLY_ACK negotiated: a refusal is a failed ack, not a closed connection
            rig.session.shareMemory();
            rig.fe.setVringNum(0, 8);
            java.io.IOException e = assertThrows(java.io.IOException.class, () -> rig.fe.setVringBase(0, PackedRingLayout.offWrap(9, true)));
            assertTrue(e.getMessage().contains("SET_VRING_BASE"), e.getMessage());
            e = assertThrows(java.io.IOException.class, () -> rig.fe.setVringBase(0, PackedQueue.FRESH | 12 << 16));
            assertTrue(e.getMessage().contains("SET_VRING_BASE"), e.getMessage());
            rig.queue(0, 8);
            assertEquals(1, rig.echo(0, new byte[] {1}));
        }
    }

    /**
     * Dirty logging with a packed ring, as QEMU turns it on for a migration (SET_LOG_BASE,
     * LOG_ALL, SET_VRING_ADDR with VHOST_VRING_F_LOG): the device writes used descriptors into the
     * descriptor ring itself, so that ring's page is marked, as are the reply buffers and the
     * device area (the device's event suppression); the request buffers it only reads are not.
     * With LOG_ALL off again nothing more is marked.
     */
    @Test
    void whileLoggingTheDescriptorRingAndDeviceAreaAreMarked() throws Exception {
        backend.close();
        backend = VhostUserBackend.start(socket, new EchoDevice(2), org.jvirtio.host.QueueHost.THREAD_PER_QUEUE,
                new BackendOptions(false, java.time.Duration.ofSeconds(10), true));
        try (FrontendRig rig = new FrontendRig(socket)) {
            long features = rig.fe.negotiate(~VhostUserProtocol.F_LOG_ALL,
                    VhostUserProtocol.BACKEND_PROTOCOL_FEATURES | (1L << VhostUserProtocol.PROTOCOL_F_LOG_SHMFD));
            rig.features = features;
            assertTrue(VirtioFeatures.has(features, VirtioFeatures.RING_PACKED));
            rig.session.shareMemory();
            QueueDriver d = rig.queue(0, 16);
            assertEquals(8, rig.echo(0, new byte[8]));
            org.jvirtio.api.MemoryMapping logMem = org.jvirtio.api.MemoryMapping.memfd("vhost-log", 64); // 512 pages: 2 MiB
            try {
                org.jvirtio.api.DirtyLog log = new org.jvirtio.api.DirtyLog(logMem.segment());
                rig.fe.setLogBase(logMem.fd(), 64, 0);
                rig.fe.setFeatures(features | VhostUserProtocol.F_PROTOCOL_FEATURES | VhostUserProtocol.F_LOG_ALL);
                // QEMU logs a packed ring's device area at the used-ring log address.
                rig.fe.setVringAddrLogged(0, d.descAddr(), d.availAddr(), d.usedAddr(), d.usedAddr());
                assertTrue((d.descAddr() >>> 12) != (FrontendRig.DATA >>> 12), "the ring and the data have pages of their own");
                for (int i = 0; i < 20; i++) { // around the ring: the device re-arms its event suppression as it waits
                    assertEquals(100, rig.echo(0, new byte[100]));
                }
                assertTrue(log.isMarked((FrontendRig.DATA + 0x8000) >>> 12), "the reply buffer's page");
                assertTrue(log.isMarked(d.descAddr() >>> 12), "the descriptor ring: used descriptors are written there");
                assertTrue(log.isMarked(d.usedAddr() >>> 12), "the device area");
                assertFalse(log.isMarked(FrontendRig.DATA >>> 12), "the request buffer is only read");
                rig.fe.setFeatures(features | VhostUserProtocol.F_PROTOCOL_FEATURES);
                rig.fe.setVringAddr(0, d.descAddr(), d.availAddr(), d.usedAddr());
                logMem.segment().fill((byte) 0);
                assertEquals(5, rig.echo(0, new byte[5]));
                for (long p = 0; p < 512; p++) {
                    assertFalse(log.isMarked(p), "logging is off again: page " + p);
                }
            } finally {
                logMem.release();
            }
        }
    }

    @Test
    void aSplitFrontEndStillGetsSplitRings() throws Exception {
        try (FrontendRig rig = new FrontendRig(socket)) {
            rig.negotiate();
            assertFalse(VirtioFeatures.has(rig.features, VirtioFeatures.RING_PACKED));
            rig.session.shareMemory();
            QueueDriver q = rig.queue(0, 16);
            assertFalse(q.packed());
            assertEquals(3, rig.echo(0, new byte[] {1, 2, 3}));
            assertEquals(1, rig.fe.getVringBase(0), "a split base is the avail index");
        }
    }
}
