package org.jvirtio.net;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.DriverSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Memory that cannot be sealed (DPDK's virtio-user memfds carry F_SEAL_SEAL only; hugetlbfs
 * files cannot be sealed), served with {@code --allow-unsealed-memory}: a front-end truncates its
 * memory under a running switch while its frames are being copied to another port. The faults
 * land where the memory is touched (the sender's own rings, the receiving port's copy, which
 * answers that one buffer empty) and nothing else: the other ports keep forwarding.
 */
class NetUnsealedMemoryTest {
    static final long A = 0x5254_0000_000aL;
    static final long B = 0x5254_0000_000bL;
    static final long C = 0x5254_0000_000cL;
    static final long NO_PACKED = ~(1L << VirtioFeatures.RING_PACKED);

    @TempDir
    Path dir;

    @Test
    void aFrontendTruncatingItsMemoryUnderTheSwitchStopsOnlyItself() throws Exception {
        String sw = "unsealed" + System.nanoTime();
        String[] common = {"--switch", sw, "--allow-unsealed-memory"};
        long size = 8 << 20;
        int fd = Libc.memfdCreate("dpdk-like");
        Libc.ftruncate(fd, size);
        Libc.fcntl(fd, Libc.F_ADD_SEALS, Libc.F_SEAL_SEAL); // as DPDK's: nothing can be sealed any more
        MemoryMapping m = MemoryMapping.map(fd, 0, size);
        GuestMemory unsealable = GuestMemory.of(GuestRegion.of(0, m));
        m.release();
        try (var pa = VhostUserRunner.start(VhostUserRunner.devices(), concat("net", "--socket", dir.resolve("a.sock").toString(), common));
             var pb = VhostUserRunner.start(VhostUserRunner.devices(), concat("net", "--socket", dir.resolve("b.sock").toString(), common));
             var pc = VhostUserRunner.start(VhostUserRunner.devices(), concat("net", "--socket", dir.resolve("c.sock").toString(), common));
             NetDriver a = new NetDriver(DriverSession.connect(dir.resolve("a.sock"), unsealable), NO_PACKED, 2048);
             NetDriver b = new NetDriver(dir.resolve("b.sock"), NO_PACKED, 2048);
             NetDriver c = new NetDriver(dir.resolve("c.sock"), NO_PACKED, 2048)) {
            b.post(NetDriver.SIZE);
            // A's frames flow to B (learned) while A's memory is cut away under them.
            c.send(NetDriver.frame(0xffff_ffff_ffffL, C, 60));
            assertEquals(1, c.sent(1, 5000));
            b.send(NetDriver.frame(0xffff_ffff_ffffL, B, 60));
            assertEquals(1, b.sent(1, 5000));
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong received = new AtomicLong();
            Thread drain = new Thread(() -> {
                try {
                    while (!stop.get()) {
                        int n = b.receive(NetDriver.SIZE / 2, 50).size();
                        received.addAndGet(n);
                        if (n > 0) {
                            b.post(n);
                        }
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            drain.start();
            for (int i = 0; i < 20; i++) {
                a.send(NetDriver.frame(B, A, 1400));
            }
            assertEquals(20, a.sent(20, 5000));
            // The next frame straddles the cut: its header and first bytes stay (the sender's
            // thread reads them), the rest is gone when the receiving port copies it.
            long at = a.nextTxBuffer();
            long cut = (at + 200 + 4095) & -4096L;
            assertTrue(cut - at >= 100 && cut < at + VirtioNet.HDR_SIZE + 1414, "the frame straddles the cut: " + (cut - at));
            a.sendThen(NetDriver.frame(B, A, 1400), () -> {
                try {
                    Libc.ftruncate(fd, cut);
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            Thread.sleep(300);
            Libc.ftruncate(fd, 0); // then all of it
            try {
                a.send(NetDriver.frame(B, A, 1400)); // faults in the test's own process as well
            } catch (RuntimeException | InternalError expected) {
                // the driver kit writing into truncated memory: the front-end's problem
            }
            Thread.sleep(500);
            // B and C go on: C's frames reach B.
            long before = received.get();
            for (int i = 0; i < 50; i++) {
                c.send(NetDriver.frame(B, C, 200));
                assertEquals(1, c.sent(1, 5000), "C's chain came back");
            }
            long end = System.currentTimeMillis() + 5000;
            while (received.get() - before < 50 && System.currentTimeMillis() < end) {
                Thread.sleep(20);
            }
            stop.set(true);
            drain.join(5000);
            assertTrue(received.get() - before >= 50, "B received C's frames after A's memory went: " + (received.get() - before)
                    + "; " + pb.stats());
            assertEquals(0, b.lengthErrors, "the frame whose bytes went while B copied them was dropped, B's buffer kept");
            assertTrue(((VirtioNetDevice) pb.device()).port().rxDropped() >= 1, pb.stats());
            assertEquals(0, ((VirtioNetDevice) pc.device()).port().txDropped());
        } finally {
            Libc.closeQuietly(fd);
        }
    }

    static String[] concat(String a, String b, String c, String[] rest) {
        String[] all = new String[3 + rest.length];
        all[0] = a;
        all[1] = b;
        all[2] = c;
        System.arraycopy(rest, 0, all, 3, rest.length);
        return all;
    }
}
