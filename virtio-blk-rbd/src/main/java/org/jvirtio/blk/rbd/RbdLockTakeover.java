package org.jvirtio.blk.rbd;

import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.function.Function;
import java.util.function.ToIntFunction;

/**
 * Lets a backend restarted on this host take its image's exclusive lock from a predecessor that
 * died holding it, at once.
 *
 * <p>A backend that is killed (SIGKILL, a crash, the OOM killer) leaves the image's exclusive lock
 * with its Ceph client, and the OSD keeps that client's watch on the image header until
 * {@code osd_client_watch_timeout} (30 s by default) passes without a ping. Until then librbd in the
 * new backend sees a live owner and asks it for the lock, in vain: the guest's writes stall for
 * those seconds (qemu-storage-daemon and QEMU's rbd driver stall the same way). The cluster cannot
 * tell a dead client from a slow one; this host can.
 *
 * <p>So each backend that opens an image for writing records, in a directory private to its user,
 * one file per process and image: its pid, the process's start time (so a reused pid is not
 * mistaken for it) and its client's addresses ({@code rados_getaddrs}, what librbd names a lock
 * owner by). A backend opening the image first looks at the records there: for each whose process
 * is gone, if the lock's owner is that record's client, it breaks the lock
 * ({@code rbd_lock_break}: librbd blocklists the dead client, so even a client that were somehow
 * still alive could not write again) and the first write takes the lock at once. The record of a
 * process that is gone is removed either way; a clean close removes the backend's own. A record
 * whose process lives is never acted on, whatever its client holds: moving a lock between live
 * backends (live migration) is librbd's cooperative transition.
 *
 * <p>The directory must be the user's own and not writable by others (a record names a client to
 * blocklist): it is created with mode 0700 and refused otherwise.
 */
final class RbdLockTakeover {
    private static final Set<PosixFilePermission> PRIVATE_DIR = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> PRIVATE_FILE = PosixFilePermissions.fromString("rw-------");

    private final Path dir;
    private final long pid = ProcessHandle.current().pid();
    private Path own;

    private RbdLockTakeover(Path dir) {
        this.dir = dir;
    }

    /**
     * The default directory: {@code $XDG_RUNTIME_DIR/jvirtio-rbd}, {@code /run/jvirtio-rbd} for
     * root, else {@code /tmp/jvirtio-rbd-UID}.
     */
    static Path defaultDir() {
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        if (xdg != null && !xdg.isEmpty() && Files.isDirectory(Path.of(xdg))) {
            return Path.of(xdg, "jvirtio-rbd");
        }
        int uid = ownUid();
        return uid == 0 ? Path.of("/run/jvirtio-rbd") : Path.of(System.getProperty("java.io.tmpdir"), "jvirtio-rbd-" + uid);
    }

    private static int ownUid() {
        try {
            return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid"); // /proc/self belongs to the process's user
        } catch (IOException | UnsupportedOperationException e) {
            return -1;
        }
    }

    /**
     * The records of one image of one cluster under {@code root} (created, mode 0700, if missing).
     *
     * @throws IOException with one line when {@code root} cannot be made or is not private to this user
     */
    static RbdLockTakeover at(Path root, String fsid, RbdImageName image) throws IOException {
        privateDir(root);
        Path d = root.resolve(safe(fsid));
        privateDir(d);
        d = d.resolve("image-" + safe(image.withoutSnapshot().toString()));
        privateDir(d);
        return new RbdLockTakeover(d);
    }

    private static String safe(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8); // no '/' left; "." and ".." cannot result from a non-empty prefix+name
    }

    private static void privateDir(Path d) throws IOException {
        try {
            Files.createDirectory(d, PosixFilePermissions.asFileAttribute(PRIVATE_DIR));
        } catch (java.nio.file.FileAlreadyExistsException e) {
            // checked below
        } catch (IOException e) {
            throw new IOException("--rbd-lock-dir: cannot create " + d + ": " + e.getMessage());
        }
        if (!Files.isDirectory(d, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException("--rbd-lock-dir: " + d + " is not a directory");
        }
        int owner = (Integer) Files.getAttribute(d, "unix:uid", LinkOption.NOFOLLOW_LINKS);
        Set<PosixFilePermission> p = Files.getPosixFilePermissions(d, LinkOption.NOFOLLOW_LINKS);
        if (owner != ownUid() || p.contains(PosixFilePermission.GROUP_WRITE) || p.contains(PosixFilePermission.OTHERS_WRITE)) {
            throw new IOException("--rbd-lock-dir: " + d + " is not private to this user (owner uid " + owner + ", mode "
                    + PosixFilePermissions.toString(p) + "): name another directory, or none");
        }
    }

    /** The directory holding this image's records. */
    Path dir() {
        return dir;
    }

    /**
     * Removes the records of processes that are gone and, when {@code owners} names one of their
     * clients as the lock's owner, breaks that lock with {@code breaker}.
     *
     * @param owners  the lock's current owners (an empty list: nobody; null: cannot be told)
     * @param breaker breaks the lock an owner holds: 0 or -errno
     * @return what was done, for the log: null when nothing was broken
     */
    String takeOver(java.util.function.Supplier<List<String>> owners, ToIntFunction<String> breaker) throws IOException {
        List<String> deadClients = new ArrayList<>();
        List<Long> deadPids = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path f : s) {
                Record r = Record.read(f);
                if (r == null) {
                    continue; // a file being written, or not ours
                }
                if (r.pid() == pid || alive(r.pid(), r.startTime(), RbdLockTakeover::procStat)) {
                    continue;
                }
                deadClients.add(r.addrs());
                deadPids.add(r.pid());
                Files.deleteIfExists(f);
            }
        }
        if (deadClients.isEmpty()) {
            return null;
        }
        List<String> now = owners.get();
        if (now == null) {
            return null;
        }
        for (String owner : now) {
            for (int i = 0; i < deadClients.size(); i++) {
                if (sameClient(owner, deadClients.get(i))) {
                    int rc = breaker.applyAsInt(owner);
                    if (rc < 0) {
                        throw RbdBackend.fail("breaking the exclusive lock that client " + owner + " of process " + deadPids.get(i)
                                + " (gone) held", rc);
                    }
                    return "took the exclusive lock over from client " + owner + " of process " + deadPids.get(i)
                            + ", which is gone (the client is blocklisted)";
                }
            }
        }
        return null;
    }

    /** Records this process's client ({@code addrs} as {@code rados_getaddrs} gives them). */
    void record(String addrs) throws IOException {
        long start = startTime(procStat(pid));
        String name = pid + "-" + Integer.toHexString(addrs.hashCode());
        Path tmp = dir.resolve("." + name + ".tmp");
        Files.deleteIfExists(tmp);
        Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PRIVATE_FILE));
        Files.writeString(tmp, new Record(pid, start, addrs).line());
        Path f = dir.resolve(name);
        try {
            Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING);
        }
        own = f;
    }

    /** Removes this process's record (a clean close: the lock is released with the image). */
    void forget() {
        if (own != null) {
            try {
                Files.deleteIfExists(own);
            } catch (IOException ignored) {
                // the next backend on this image removes it (its process is gone)
            }
            own = null;
        }
    }

    /** One record: {@code PID START-TIME ADDRS}. */
    record Record(long pid, long startTime, String addrs) {
        String line() {
            return pid + " " + startTime + " " + addrs + "\n";
        }

        static Record parse(String text) {
            String[] f = text.strip().split(" ", 3);
            if (f.length != 3 || f[2].isEmpty() || f[2].indexOf(' ') >= 0) {
                return null;
            }
            try {
                return new Record(Long.parseLong(f[0]), Long.parseLong(f[1]), f[2]);
            } catch (NumberFormatException e) {
                return null;
            }
        }

        static Record read(Path f) throws IOException {
            if (f.getFileName().toString().startsWith(".") || !Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) {
                return null;
            }
            try {
                return parse(Files.readString(f));
            } catch (NoSuchFileException e) {
                return null;
            } catch (java.nio.charset.MalformedInputException e) {
                return null;
            }
        }
    }

    /** {@code /proc/PID/stat}, or null when there is no such process. */
    static String procStat(long pid) {
        try {
            return Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * Whether the process {@code pid} that started at {@code startTime} still runs: its
     * {@code /proc/PID/stat} exists, is not a zombie's, and gives that start time. When the file
     * cannot be read for another reason, the process is taken as alive (nothing is broken).
     */
    static boolean alive(long pid, long startTime, Function<Long, String> stat) {
        String s = stat.apply(pid);
        if (s == null) {
            return false;
        }
        String[] f = fieldsAfterName(s);
        if (f == null) {
            return true;
        }
        if (f[0].equals("Z") || f[0].equals("X")) {
            return false;
        }
        try {
            return Long.parseLong(f[19]) == startTime;
        } catch (NumberFormatException e) {
            return true;
        }
    }

    /** Field 22 of {@code /proc/PID/stat} (the start time in clock ticks since boot). */
    static long startTime(String stat) throws IOException {
        String[] f = stat == null ? null : fieldsAfterName(stat);
        if (f == null) {
            throw new IOException("cannot read this process's /proc/PID/stat");
        }
        return Long.parseLong(f[19]);
    }

    /**
     * The fields of a {@code /proc/PID/stat} line after the command name (the state first, the
     * start time at index 19), or null when it is cut short. The name may hold spaces and
     * parentheses, so it ends at the last ')'.
     */
    private static String[] fieldsAfterName(String stat) {
        int close = stat.lastIndexOf(')');
        if (close < 0) {
            return null;
        }
        String[] f = stat.substring(close + 1).strip().split(" +");
        return f.length < 20 ? null : f;
    }

    /**
     * Whether a lock owner (librbd gives its legacy address, {@code 127.0.0.1:0/3141592}) is the
     * client whose addresses {@code rados_getaddrs} gave as {@code addrs} (that same form, or a
     * vector {@code [v2:IP:PORT/NONCE,v1:IP:PORT/NONCE]}).
     */
    static boolean sameClient(String owner, String addrs) {
        String o = bare(owner);
        for (String a : addrs.replace("[", "").replace("]", "").split(",")) {
            if (!a.isEmpty() && bare(a).equals(o)) {
                return true;
            }
        }
        return false;
    }

    private static String bare(String addr) {
        String a = addr.strip();
        for (String p : new String[] {"v1:", "v2:", "any:"}) {
            if (a.startsWith(p)) {
                return a.substring(p.length());
            }
        }
        return a;
    }
}
