package org.jvirtio.runner;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import org.jvirtio.command.Flags;

/**
 * The flags of the process, given before the first device:
 * {@code bin/vhost-user [--control PATH] [--metrics HOST:PORT] [--iothreads N] [DEVICE FLAGS [+ DEVICE FLAGS]...]}.
 */
final class ProcessOptions {
    /** The names these flags go by: what may come before a device's name. */
    static final Set<String> NAMES = Set.of("--control", "--metrics", "--iothreads");

    Path control;
    String metrics;
    int iothreads = 1;

    void declare(Flags flags) {
        flags.section("Flags of the process (before the first device)");
        flags.path("--control", "PATH",
                "Serve the control socket at PATH (mode 0600): HTTP/JSON to add, remove, list and watch devices while the process runs (vhost-user ctl --help). With it the process may start with no device.",
                v -> control = v);
        flags.string("--metrics", "HOST:PORT", "Serve every device's counters for Prometheus at http://HOST:PORT/metrics.", null, v -> metrics = v);
        flags.integer("--iothreads", "N", "I/O threads the process's devices share (a device's own --iothreads may not ask for more).", 1,
                v -> iothreads = v);
    }

    /** Where the process's flags end in {@code args}: the index of the first argument that is not one of them (or its value). */
    static int end(List<String> args) {
        int i = 0;
        while (i < args.size()) {
            String a = args.get(i);
            int eq = a.indexOf('=');
            String name = eq < 0 ? a : a.substring(0, eq);
            if (!NAMES.contains(name)) {
                return i;
            }
            i += eq < 0 ? 2 : 1;
        }
        return Math.min(i, args.size());
    }

    /** Parses {@code args} (the process's flags only) and checks them; each problem is one line. */
    static ProcessOptions parse(List<String> args) {
        ProcessOptions o = new ProcessOptions();
        Flags flags = new Flags();
        o.declare(flags);
        flags.parse(args);
        if (o.iothreads < 1 || o.iothreads > 64) {
            throw new IllegalArgumentException("--iothreads must be in [1, 64], got " + o.iothreads);
        }
        if (o.metrics != null) {
            Metrics.parseAddress(o.metrics);
        }
        if (o.control != null) {
            Path dir = o.control.toAbsolutePath().getParent();
            if (dir == null || !Files.isDirectory(dir)) {
                throw new IllegalArgumentException("--control " + o.control + ": directory " + dir + " does not exist");
            }
        }
        return o;
    }
}
