package org.jvirtio.blk.rbd;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The records a backend keeps so that its successor after a crash takes the image's lock at once
 * ({@link RbdLockTakeover}), without a cluster: which records count as a dead predecessor's,
 * which lock owner is theirs, and the directory's privacy. {@code RbdBlkTest} runs it on a real
 * cluster with a killed backend.
 */
class RbdLockTakeoverTest {
    private static final String FSID = "782f907e-155a-47f7-8bad-658b1233e8f4";
    private static final RbdImageName IMAGE = RbdImageName.parse("rbd/vm1");

    @TempDir
    Path dir;

    @Test
    void aLockOwnerIsMatchedWithTheClientsAddressesInEitherForm() {
        assertTrue(RbdLockTakeover.sameClient("127.0.0.1:0/4175301368", "127.0.0.1:0/4175301368"));
        assertTrue(RbdLockTakeover.sameClient("10.0.0.5:0/99", "[v2:10.0.0.5:0/99,v1:10.0.0.5:0/99]"));
        assertTrue(RbdLockTakeover.sameClient("v1:10.0.0.5:0/99", "[v2:10.0.0.5:0/99]"));
        assertFalse(RbdLockTakeover.sameClient("127.0.0.1:0/4175301368", "127.0.0.1:0/4175301369"), "another client of this host");
        assertFalse(RbdLockTakeover.sameClient("127.0.0.1:0/41", "127.0.0.1:0/4175301368"));
        assertFalse(RbdLockTakeover.sameClient("10.0.0.6:0/99", "[v2:10.0.0.5:0/99,v1:10.0.0.5:0/99]"), "another host");
    }

    private static String stat(String comm, char state, long start) {
        StringBuilder b = new StringBuilder("4242 (").append(comm).append(") ").append(state);
        for (int field = 4; field <= 21; field++) {
            b.append(' ').append(field);
        }
        return b.append(' ').append(start).append(" 100 200 300\n").toString();
    }

    @Test
    void aProcessIsAliveOnlyWhenItsStatGivesTheRecordedStartTimeAndItIsNoZombie() {
        assertTrue(RbdLockTakeover.alive(4242, 777, p -> stat("java", 'S', 777)));
        assertTrue(RbdLockTakeover.alive(4242, 777, p -> stat("a) b (c", 'R', 777)), "a command name with spaces and parentheses");
        assertFalse(RbdLockTakeover.alive(4242, 777, p -> null), "no such process");
        assertFalse(RbdLockTakeover.alive(4242, 777, p -> stat("java", 'S', 778)), "the pid was reused by a later process");
        assertFalse(RbdLockTakeover.alive(4242, 777, p -> stat("java", 'Z', 777)), "a zombie holds no client");
        assertTrue(RbdLockTakeover.alive(4242, 777, p -> ""), "unreadable: taken as alive, nothing is broken");
        assertTrue(RbdLockTakeover.alive(4242, 777, p -> "4242 (java) S 1 2"), "truncated: taken as alive");
    }

    @Test
    void thisProcessIsAliveByItsOwnProcStat() throws IOException {
        long pid = ProcessHandle.current().pid();
        long start = RbdLockTakeover.startTime(RbdLockTakeover.procStat(pid));
        assertTrue(RbdLockTakeover.alive(pid, start, RbdLockTakeover::procStat));
        assertFalse(RbdLockTakeover.alive(pid, start + 1, RbdLockTakeover::procStat));
    }

    private static long deadPid() throws Exception {
        Process p = new ProcessBuilder("true").start();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        return p.pid();
    }

    /** A breaker that succeeds and notes whose lock it broke. */
    private static java.util.function.ToIntFunction<String> breakInto(List<String> broken) {
        return owner -> {
            broken.add(owner);
            return 0;
        };
    }

    private void write(RbdLockTakeover t, String name, long pid, long start, String addrs) throws IOException {
        Files.writeString(t.dir().resolve(name), new RbdLockTakeover.Record(pid, start, addrs).line());
    }

    @Test
    void theLockOfADeadPredecessorIsBrokenAndItsRecordRemoved() throws Exception {
        RbdLockTakeover t = RbdLockTakeover.at(dir.resolve("locks"), FSID, IMAGE);
        long dead = deadPid();
        write(t, dead + "-a", dead, 12345, "127.0.0.1:0/111");
        List<String> broken = new ArrayList<>();
        String done = t.takeOver(() -> List.of("127.0.0.1:0/111"), breakInto(broken));
        assertEquals(List.of("127.0.0.1:0/111"), broken);
        assertNotNull(done);
        assertTrue(done.contains("127.0.0.1:0/111") && done.contains(Long.toString(dead)), done);
        assertFalse(Files.exists(t.dir().resolve(dead + "-a")), "the dead process's record is removed");
    }

    @Test
    void aLiveProcesssLockIsNeverBrokenNorItsRecordRemoved() throws Exception {
        RbdLockTakeover t = RbdLockTakeover.at(dir.resolve("locks"), FSID, IMAGE);
        Process sleeper = new ProcessBuilder("sleep", "60").start();
        try {
            long start = RbdLockTakeover.startTime(RbdLockTakeover.procStat(sleeper.pid()));
            write(t, sleeper.pid() + "-a", sleeper.pid(), start, "127.0.0.1:0/222");
            long self = ProcessHandle.current().pid();
            write(t, self + "-b", self, 1, "127.0.0.1:0/333"); // this process's own (another image handle of it)
            List<String> broken = new ArrayList<>();
            assertNull(t.takeOver(() -> List.of("127.0.0.1:0/222"), breakInto(broken)));
            assertNull(t.takeOver(() -> List.of("127.0.0.1:0/333"), breakInto(broken)));
            assertEquals(List.of(), broken);
            assertTrue(Files.exists(t.dir().resolve(sleeper.pid() + "-a")));
            assertTrue(Files.exists(t.dir().resolve(self + "-b")));
        } finally {
            sleeper.destroyForcibly().waitFor();
        }
    }

    @Test
    void aDeadPredecessorThatDoesNotHoldTheLockBreaksNothing() throws Exception {
        RbdLockTakeover t = RbdLockTakeover.at(dir.resolve("locks"), FSID, IMAGE);
        long dead = deadPid();
        write(t, dead + "-a", dead, 12345, "127.0.0.1:0/111");
        List<String> broken = new ArrayList<>();
        assertNull(t.takeOver(() -> List.of("127.0.0.1:0/999"), breakInto(broken)), "another client holds the lock");
        write(t, dead + "-a", dead, 12345, "127.0.0.1:0/111");
        assertNull(t.takeOver(List::of, breakInto(broken)), "nobody holds it");
        write(t, dead + "-a", dead, 12345, "127.0.0.1:0/111");
        assertNull(t.takeOver(() -> null, breakInto(broken)), "the owner cannot be told");
        assertEquals(List.of(), broken);
        assertFalse(Files.exists(t.dir().resolve(dead + "-a")));
    }

    @Test
    void aLockThatCannotBeBrokenIsOneLineNamingWhy() throws Exception {
        RbdLockTakeover t = RbdLockTakeover.at(dir.resolve("locks"), FSID, IMAGE);
        long dead = deadPid();
        write(t, dead + "-a", dead, 12345, "127.0.0.1:0/111");
        IOException e = assertThrows(IOException.class, () -> t.takeOver(() -> List.of("127.0.0.1:0/111"), o -> -13));
        assertTrue(e.getMessage().contains("127.0.0.1:0/111") && e.getMessage().contains("errno 13"), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
    }

    @Test
    void malformedAndForeignFilesAreIgnored() throws Exception {
        RbdLockTakeover t = RbdLockTakeover.at(dir.resolve("locks"), FSID, IMAGE);
        Files.writeString(t.dir().resolve("junk"), "not a record\n");
        Files.writeString(t.dir().resolve("half"), "123 456\n");
        Files.write(t.dir().resolve("binary"), new byte[] {(byte) 0xff, (byte) 0xfe, 0, 1});
        Files.writeString(t.dir().resolve(".99-x.tmp"), "99 1 127.0.0.1:0/111\n"); // a record being written
        Files.createDirectory(t.dir().resolve("sub"));
        List<String> broken = new ArrayList<>();
        assertNull(t.takeOver(() -> List.of("127.0.0.1:0/111"), breakInto(broken)));
        assertEquals(List.of(), broken);
    }

    @Test
    void aRecordIsPrivateReadableAndGoneAfterForget() throws Exception {
        RbdLockTakeover t = RbdLockTakeover.at(dir.resolve("locks"), FSID, IMAGE);
        t.record("127.0.0.1:0/4175301368");
        List<Path> files;
        try (var s = Files.list(t.dir())) {
            files = s.toList();
        }
        assertEquals(1, files.size(), files.toString());
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(files.get(0))));
        RbdLockTakeover.Record r = RbdLockTakeover.Record.parse(Files.readString(files.get(0)));
        assertEquals(ProcessHandle.current().pid(), r.pid());
        assertEquals("127.0.0.1:0/4175301368", r.addrs());
        assertTrue(RbdLockTakeover.alive(r.pid(), r.startTime(), RbdLockTakeover::procStat));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(t.dir())));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("locks"))));
        t.forget();
        try (var s = Files.list(t.dir())) {
            assertEquals(0, s.count());
        }
    }

    @Test
    void imagesAndClustersKeepTheirRecordsApart() throws Exception {
        Path root = dir.resolve("locks");
        Path a = RbdLockTakeover.at(root, FSID, RbdImageName.parse("rbd/vm1")).dir();
        Path b = RbdLockTakeover.at(root, FSID, RbdImageName.parse("rbd/ns/vm1")).dir();
        Path c = RbdLockTakeover.at(root, "another-fsid", RbdImageName.parse("rbd/vm1")).dir();
        Path snap = RbdLockTakeover.at(root, FSID, RbdImageName.parse("rbd/vm1@s1")).dir();
        assertEquals(3, java.util.Set.of(a, b, c).size());
        assertEquals(a, snap, "a snapshot's image is the image");
        for (Path p : List.of(a, b, c)) {
            assertTrue(p.startsWith(root) && p.getNameCount() == root.getNameCount() + 2, p.toString());
        }
    }

    @Test
    void aDirectoryOthersMayWriteIsRefusedInOneLine() throws Exception {
        Path open = dir.resolve("open");
        Files.createDirectory(open);
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
        IOException e = assertThrows(IOException.class, () -> RbdLockTakeover.at(open, FSID, IMAGE));
        assertTrue(e.getMessage().contains("not private"), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());

        Path target = dir.resolve("target");
        Files.createDirectory(target, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path link = Files.createSymbolicLink(dir.resolve("link"), target);
        e = assertThrows(IOException.class, () -> RbdLockTakeover.at(link, FSID, IMAGE));
        assertTrue(e.getMessage().contains("not a directory"), e.getMessage());

        Path file = Files.writeString(dir.resolve("file"), "x");
        e = assertThrows(IOException.class, () -> RbdLockTakeover.at(file.resolve("sub"), FSID, IMAGE));
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    }
}
