package org.jvirtio.testkit;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The process's open file descriptors, as the leak tests count them: every one but the JVM's own
 * files (a jar of the class path, a file under {@code java.home}), which the JVM opens the first
 * time it loads a class from them, whenever that happens to be. What code under test opens and
 * may leak (sockets, memfds, eventfds, epoll and io_uring instances, pipes, image files) is
 * counted. The one place the tests read {@code /proc/self/fd}.
 */
public final class OpenFds {
    private static final String JAVA_HOME = Path.of(System.getProperty("java.home")).toAbsolutePath().normalize() + "/";

    private OpenFds() {
    }

    /** Open descriptors that code under test could leak. */
    public static long count() throws IOException {
        return targets().stream().filter(OpenFds::counted).count();
    }

    /** What the counted descriptors are (their targets, sorted), for a failure's message. */
    public static String describe() throws IOException {
        return targets().stream().filter(OpenFds::counted).sorted().toList().toString();
    }

    static boolean counted(String target) {
        return !(target.endsWith(".jar") || target.startsWith(JAVA_HOME));
    }

    /** Each open descriptor's target ({@code socket:[...]}, {@code /memfd:...}, a path); one closed meanwhile is left out. */
    static List<String> targets() throws IOException {
        List<String> out = new ArrayList<>();
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    out.add(Files.readSymbolicLink(fd).toString());
                } catch (IOException e) {
                    // closed between the listing and the read (or the listing's own descriptor): not open now
                }
            }
        }
        return out;
    }
}
