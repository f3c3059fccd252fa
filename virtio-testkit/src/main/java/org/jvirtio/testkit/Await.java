package org.jvirtio.testkit;

import java.time.Duration;

/**
 * Waits for a condition a test cannot be told about directly (another thread's work, a process's
 * output): polls it until it holds, and fails with what was awaited when the time runs out. The
 * one deadline loop of the tests.
 */
public final class Await {
    private Await() {
    }

    /** A condition; it may throw (an assertion failing at once, an I/O error reading a log). */
    @FunctionalInterface
    public interface Condition {
        boolean holds() throws Exception;
    }

    /** The failure's text, made when it fails (the state then). */
    @FunctionalInterface
    public interface Message {
        String get() throws Exception;
    }

    /**
     * Polls {@code condition} (every millisecond) until it holds.
     *
     * @param what what is awaited, for the failure ("the queue rests")
     * @throws AssertionError when it did not hold within {@code timeout}
     */
    public static void await(Condition condition, Duration timeout, String what) throws Exception {
        await(condition, timeout, () -> what);
    }

    /** As {@link #await(Condition, Duration, String)}, with the failure's text made when it fails. */
    public static void await(Condition condition, Duration timeout, Message what) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.holds()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("not within " + timeout.toMillis() + " ms: " + what.get());
            }
            Thread.sleep(1);
        }
    }

    /**
     * Whether a process of this network namespace listens on the Unix socket {@code path}: a line
     * of {@code /proc/net/unix} names it with {@code __SO_ACCEPTCON} (0x10000) in its flags, or
     * the socket file is there and no line names it (bound under another name and renamed into
     * place once it listened, as jvirtio's backend does: /proc keeps the name it was bound to). A
     * server like qemu-storage-daemon creates the socket file when it binds and listens just
     * after, so a connect made because the file exists can be refused; waiting for this cannot.
     */
    public static boolean listening(java.nio.file.Path path) throws java.io.IOException {
        String suffix = " " + path.toAbsolutePath();
        boolean named = false;
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/net/unix"))) {
            String[] f = line.trim().split("\\s+");
            if (line.endsWith(suffix) && f.length >= 8 && !f[0].equals("Num")) {
                if ((Long.parseLong(f[3], 16) & 0x10000) != 0) {
                    return true;
                }
                named = true;
            }
        }
        return !named && isSocketFile(path);
    }

    /** Whether {@code path} is there and is neither a file, a directory nor a link (a socket). */
    private static boolean isSocketFile(java.nio.file.Path path) {
        try {
            return java.nio.file.Files.readAttributes(path, java.nio.file.attribute.BasicFileAttributes.class,
                    java.nio.file.LinkOption.NOFOLLOW_LINKS).isOther();
        } catch (java.io.IOException e) {
            return false;
        }
    }

    /** A timeout of {@code seconds}, for readable calls: {@code await(done, seconds(5), "done")}. */
    public static Duration seconds(long seconds) {
        return Duration.ofSeconds(seconds);
    }
}
