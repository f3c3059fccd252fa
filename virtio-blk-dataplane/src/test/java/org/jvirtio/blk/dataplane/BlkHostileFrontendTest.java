package org.jvirtio.blk.dataplane;

import java.nio.file.Path;

import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.host.IoThreads;
import org.jvirtio.transport.vhostuser.HostileFrontendFuzz;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The hostile front-end (virtio-transport-vhostuser's {@link HostileFrontendFuzz}) against the
 * virtio-blk device on an image with io_uring I/O threads: the rings hold real blk requests, so
 * queues are busy with the kernel writing into guest memory when memory tables change, rings stop
 * and the device resets; memory must stay mapped until the last write.
 */
class BlkHostileFrontendTest {
    @TempDir
    Path dir;

    @Test
    void randomSessionsAgainstBlkOnIoUringNeverHangLeakOrStopTheBackend() throws Exception {
        Path img = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(HostileFrontendFuzz.DISK);
        }
        VirtioBlkDevice blk = new VirtioBlkDevice(FileBackend.open(img, false, false),
                new BlkOptions(HostileFrontendFuzz.QUEUES, 256, "fuzz", false), new UringIoFactory());
        IoThreads io = new IoThreads(1, 0);
        try {
            HostileFrontendFuzz.run("blk", dir, blk, io, new HostileFrontendFuzz.Served() {
                long served() {
                    long n = 0;
                    for (int q = 0; q < HostileFrontendFuzz.QUEUES; q++) {
                        n += blk.stats(q).requests();
                    }
                    return n;
                }

                @Override
                public String describe() {
                    return served() + " blk requests";
                }

                @Override
                public void check(int sessions) {
                    assertTrue(served() > sessions, "blk requests served: " + served());
                }
            });
        } finally {
            blk.backend().close();
            io.close();
        }
    }
}
