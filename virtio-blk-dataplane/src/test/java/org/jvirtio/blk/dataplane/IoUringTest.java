package org.jvirtio.blk.dataplane;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.jvirtio.api.linux.Libc;
import org.jvirtio.testkit.OpenFds;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The FFM io_uring binding against the real kernel. */
class IoUringTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void available() {
        assumeTrue(UringIoFactory.available(), "io_uring is not available here");
    }

    @Test
    void writevReadvFsyncAndErrorsThroughARegisteredFile() throws Exception {
        Path p = dir.resolve("f");
        Files.write(p, new byte[16384]);
        int fd = Libc.open(p.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        try (IoUring ring = IoUring.create(4); Arena a = Arena.ofConfined()) {
            assertEquals(4, ring.entries());
            ring.registerFiles(fd);
            MemorySegment buf = a.allocate(8192, 4096);
            for (int i = 0; i < 8192; i++) {
                buf.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 7));
            }
            // two iovecs of 4 KiB each, written at 4096
            MemorySegment iov = a.allocate(32, 8);
            iov.set(ValueLayout.JAVA_LONG, 0, buf.address());
            iov.set(ValueLayout.JAVA_LONG, 8, 4096);
            iov.set(ValueLayout.JAVA_LONG, 16, buf.address() + 4096);
            iov.set(ValueLayout.JAVA_LONG, 24, 4096);
            long s = ring.nextSqe();
            ring.prep(s, IoUring.OP_WRITEV, IoUring.IOSQE_FIXED_FILE, 0, 4096, iov.address(), 2, 0, 1);
            s = ring.nextSqe();
            ring.prep(s, IoUring.OP_FSYNC, IoUring.IOSQE_FIXED_FILE, 0, 0, 0, 0, IoUring.FSYNC_DATASYNC, 2);
            // file index 3 is not registered: -EBADF in its completion, not a failed submit
            s = ring.nextSqe();
            ring.prep(s, IoUring.OP_READV, IoUring.IOSQE_FIXED_FILE, 3, 0, iov.address(), 2, 0, 3);
            s = ring.nextSqe();
            ring.prep(s, IoUring.OP_FALLOCATE, IoUring.IOSQE_FIXED_FILE, 0, 0, 4096, 0x3 /* PUNCH_HOLE|KEEP_SIZE */, 0, 4);
            assertEquals(-1, ring.nextSqe(), "a full submission ring says so");
            assertEquals(4, ring.submit());
            Map<Long, Integer> results = new HashMap<>();
            while (results.size() < 4) {
                if (!ring.hasCompletions()) {
                    ring.awaitCompletions(1);
                }
                ring.reap(results::put);
            }
            assertEquals(8192, results.get(1L));
            assertEquals(0, results.get(2L));
            assertEquals(-9, results.get(3L));
            assertEquals(0, results.get(4L));
            byte[] file = Files.readAllBytes(p);
            for (int i = 0; i < 8192; i++) {
                assertEquals((byte) (i * 7), file[4096 + i]);
            }
            // read it back into cleared memory
            buf.fill((byte) 0);
            s = ring.nextSqe();
            assertTrue(s >= 0);
            ring.prep(s, IoUring.OP_READV, IoUring.IOSQE_FIXED_FILE, 0, 4096, iov.address(), 2, 0, 5);
            ring.submit();
            int[] res = {Integer.MIN_VALUE};
            while (res[0] == Integer.MIN_VALUE) {
                if (!ring.hasCompletions()) {
                    ring.awaitCompletions(1);
                }
                ring.reap((u, r) -> res[0] = r);
            }
            assertEquals(8192, res[0]);
            for (int i = 0; i < 8192; i++) {
                assertEquals((byte) (i * 7), buf.get(ValueLayout.JAVA_BYTE, i));
            }
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void closingReleasesTheRing() throws Exception {
        long before = OpenFds.count();
        for (int i = 0; i < 50; i++) {
            IoUring.create(64).close();
        }
        assertEquals(before, OpenFds.count());
    }

    @Test
    @org.junit.jupiter.api.Timeout(10)
    void aCallbackThatReapsAgainDoesNotMakeTheOuterReapReadPastTheTail() throws Exception {
        // What UringQueueIo does when a retry finds the submission queue full: submit and reap
        // from inside a completion callback. Every completion must be delivered exactly once.
        try (IoUring ring = IoUring.create(4)) {
            for (int i = 0; i < 4; i++) {
                ring.prep(ring.nextSqe(), IoUring.OP_NOP, 0, 0, 0, 0, 0, 0, i);
            }
            ring.submit();
            ring.awaitCompletions(4);
            List<Long> seen = new ArrayList<>();
            boolean[] nested = {false};
            IoUring.Completions sink = new IoUring.Completions() {
                @Override
                public void complete(long userData, int res) {
                    seen.add(userData);
                    if (!nested[0] && seen.size() < 100) {
                        nested[0] = true;
                        try {
                            for (int i = 0; i < 4; i++) {
                                ring.prep(ring.nextSqe(), IoUring.OP_NOP, 0, 0, 0, 0, 0, 0, 10 + i);
                            }
                            ring.submit();
                            ring.awaitCompletions(4);
                        } catch (Exception e) {
                            throw new AssertionError(e);
                        }
                        ring.reap(this);
                    } else if (seen.size() > 100) {
                        throw new AssertionError("completions delivered again: " + seen.subList(0, 20));
                    }
                }
            };
            ring.reap(sink);
            ring.reap(sink);
            Collections.sort(seen);
            assertEquals(List.of(0L, 1L, 2L, 3L, 10L, 11L, 12L, 13L), seen);
        }
    }
}
