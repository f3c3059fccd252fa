package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

import io.micrometer.core.instrument.Meter;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/**
 * The devices one process serves, each under an id: those its command line started, and those
 * the control socket adds and removes while it runs ({@link ControlServer}). A device added here
 * goes the command line's way (its flags parsed by the same {@link Flags}, the device composed
 * before it listens, on the process's shared threads), so a request that could not start it
 * starts nothing and says why in one line.
 *
 * <p>Changes (add, remove, close) are one at a time; readers ({@link #entries}, {@link #get})
 * see an immutable snapshot and never wait for a change, however long a removal drains.
 */
final class DeviceSet implements AutoCloseable {
    /** What an id looks like: a name an operator types and a Prometheus label holds as is. */
    static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    /** A device of the set, and what the set keeps beside it: its --stats timer and its meters. */
    record Entry(String id, Serving.Served<?> served, ScheduledFuture<?> stats, List<Meter> meters) {
    }

    /** A request that conflicts with what the set holds: an id or a socket already taken. */
    static final class Conflict extends IllegalArgumentException {
        Conflict(String message) {
            super(message);
        }
    }

    private final Map<String, DeviceCommand<?>> known;
    /** The threads added devices share, or null for a set that only holds what the command line started. */
    private final SeveralDevices.Shared shared;
    private final Metrics metrics;
    private final PrintStream out;
    /** Whether lines name the device's socket too (a process that serves, or may serve, several). */
    private final boolean several;
    private final ScheduledExecutorService statsTimer = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("stats").unstarted(r));
    private final Object changes = new Object();
    private final Map<String, Integer> nextNumber = new HashMap<>();
    private final AtomicLong removed = new AtomicLong();
    private volatile Map<String, Entry> view = Map.of();
    /** Sockets nobody may take: the control socket. */
    private volatile Path reserved;
    private boolean closed;

    /**
     * @param known the devices found on the class path, by name
     * @param shared the process's shared threads, or null when devices cannot be added
     * @param metrics where each device's meters go, or null
     */
    DeviceSet(Map<String, DeviceCommand<?>> known, SeveralDevices.Shared shared, Metrics metrics, PrintStream out, boolean several) {
        this.known = known;
        this.shared = shared;
        this.metrics = metrics;
        this.out = out;
        this.several = several;
    }

    /** Keeps {@code socket} (the control socket) from being any device's. */
    void reserve(Path socket) {
        reserved = socket.toAbsolutePath().normalize();
    }

    int size() {
        return view.size();
    }

    /** Devices removed so far. */
    long removedCount() {
        return removed.get();
    }

    /** The devices now, in the order they were added. */
    Collection<Entry> entries() {
        return view.values();
    }

    /** The device {@code id}, or null. */
    Entry get(String id) {
        return view.get(id);
    }

    /** Takes devices the command line started (all composed and listening) into the set, each under a new id. */
    void adopt(List<Serving.Served<?>> started) {
        synchronized (changes) {
            for (Serving.Served<?> d : started) {
                install(nextId(d.name()), d);
            }
        }
    }

    /**
     * Adds a device as its command line would: {@code args} are the device's name and its flags
     * ({@code blk --socket PATH --image FILE}). Nothing listens unless all of it worked.
     *
     * @param id the id asked for, or null for the next free {@code NAME}{@code N}
     * @throws IllegalArgumentException for a bad request (one line: the flag, the device, the id)
     * @throws Conflict for an id or socket another device has
     * @throws IOException for a device that cannot start (an image that does not open)
     */
    Entry add(String id, List<String> args) throws IOException {
        if (shared == null) {
            throw new IllegalStateException("this process was started without --control: its devices are fixed");
        }
        if (args.isEmpty() || args.get(0).startsWith("-")) {
            throw new IllegalArgumentException("name a device first: " + String.join(", ", known.keySet()));
        }
        DeviceCommand<?> found = known.get(args.get(0));
        if (found == null) {
            throw new IllegalArgumentException("no device named '" + args.get(0) + "'; found: " + String.join(", ", known.keySet()));
        }
        if (id != null && !ID.matcher(id).matches()) {
            throw new IllegalArgumentException("id '" + shorten(id) + "': use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'");
        }
        DeviceCommand<?> command = SeveralDevices.fresh(found);
        RunnerOptions options = new RunnerOptions();
        List<String> own = args.subList(1, args.size());
        try {
            Flags flags = VhostUserRunner.flags(command, options);
            if (flags.asksForHelp(own)) {
                throw new IllegalArgumentException("--help is not a device; vhost-user " + command.name() + " --help lists its flags");
            }
            if (flags.end(own, 0, VhostUserRunner.AND) != own.size()) {
                throw new IllegalArgumentException("one device per request ('" + VhostUserRunner.AND + "' separates devices on a command line)");
            }
            flags.parse(own);
            options.check();
            if (options.metrics != null) {
                throw new IllegalArgumentException("--metrics is the process's: give it when starting the process, not with a device");
            }
            if (!options.threadPerQueue && options.iothreads > shared.io().threads()) {
                throw new IllegalArgumentException("--iothreads " + options.iothreads + ": this process's devices share "
                        + shared.io().threads() + " I/O threads (start it with --iothreads " + options.iothreads + ")");
            }
        } catch (IllegalArgumentException e) {
            closeQuietly(command);
            throw e;
        }
        synchronized (changes) {
            String chosen;
            try {
                if (closed) {
                    throw new IllegalStateException("the process is stopping");
                }
                chosen = id != null ? id : nextId(command.name());
                if (view.containsKey(chosen)) {
                    throw new Conflict("a device with id '" + chosen + "' exists");
                }
                Path socket = options.socket.toAbsolutePath().normalize();
                if (socket.equals(reserved)) {
                    throw new Conflict("--socket " + options.socket + " is the control socket");
                }
                for (Entry e : view.values()) {
                    if (e.served().options().socket.toAbsolutePath().normalize().equals(socket)) {
                        throw new Conflict("--socket " + options.socket + " is device '" + e.id() + "''s");
                    }
                }
            } catch (RuntimeException e) {
                closeQuietly(command);
                throw e;
            }
            return install(chosen, start(command, options));
        }
    }

    /** Composes and listens: closes {@code command} if either fails. */
    private <D extends VirtioDevice> Serving.Served<D> start(DeviceCommand<D> command, RunnerOptions options) throws IOException {
        D device = VhostUserRunner.compose(command, options);
        return new Serving.Served<>(command.name(), options, VhostUserRunner.listen(command, options, device, shared));
    }

    private Entry install(String id, Serving.Served<?> d) {
        String what = d.describe();
        out.println(d.name() + (several ? " (" + id + ")" : "") + ": serving " + (what.isEmpty() ? "" : what + " ") + "on "
                + d.options().socket.toAbsolutePath());
        out.println("attach with QEMU:");
        out.println("  " + d.qemuFragment());
        out.flush();
        ScheduledFuture<?> stats = null;
        if (d.options().statsSeconds > 0) {
            stats = statsTimer.scheduleAtFixedRate(() -> {
                out.println(several ? d.prefix(true) + d.running().stats() : d.running().stats());
                out.flush();
            }, d.options().statsSeconds, d.options().statsSeconds, TimeUnit.SECONDS);
        }
        Entry e = new Entry(id, d, stats, metrics == null ? List.of() : metrics.register(id, d));
        org.jvirtio.api.jfr.DeviceLifecycleEvent.emit(id, d.name(), d.options().socket.toAbsolutePath().toString(), "started");
        Map<String, Entry> next = new LinkedHashMap<>(view);
        next.put(id, e);
        view = Collections.unmodifiableMap(next);
        return e;
    }

    /**
     * Removes the device {@code id}: its front-end is disconnected as on SIGTERM (rings stopped,
     * requests in flight given the drain limit), its memory and fds released, its socket removed.
     *
     * @throws NoSuchElementException when there is no such device
     */
    void remove(String id) throws IOException {
        Entry e;
        synchronized (changes) {
            e = view.get(id);
            if (e == null) {
                throw new NoSuchElementException("no device with id '" + shorten(id) + "'");
            }
            Map<String, Entry> next = new LinkedHashMap<>(view);
            next.remove(id);
            view = Collections.unmodifiableMap(next);
            removed.incrementAndGet();
            if (e.stats() != null) {
                e.stats().cancel(false);
            }
            if (metrics != null) {
                metrics.remove(e.meters());
            }
            try {
                e.served().running().close();
            } finally {
                org.jvirtio.api.jfr.DeviceLifecycleEvent.emit(id, e.served().name(), e.served().options().socket.toAbsolutePath().toString(),
                        "removed");
                out.println(e.served().name() + (several ? " (" + id + ")" : "") + ": removed");
                out.flush();
            }
        }
    }

    /** Reloads every device (SIGHUP), each line under its device's prefix. */
    void reloadAll() {
        for (Entry e : view.values()) {
            Serving.Served<?> d = e.served();
            try {
                String line = d.reload();
                if (line != null) {
                    out.println(d.prefix(several) + line);
                }
            } catch (IOException | RuntimeException ex) {
                out.println(d.prefix(several) + "reload failed: " + ex.getMessage());
            }
        }
        out.flush();
    }

    /**
     * Stops every device at once, each on a thread of its own (a stop gives a device's queues a
     * few seconds for storage that does not answer, and one after the other would add those up),
     * and says which stopped. No device can be added after.
     *
     * @throws IOException the first device that failed to stop cleanly
     */
    @Override
    public void close() throws IOException {
        List<Entry> all;
        synchronized (changes) {
            closed = true;
            all = new ArrayList<>(view.values());
            view = Map.of();
        }
        statsTimer.shutdownNow();
        List<IOException> failures = Collections.synchronizedList(new ArrayList<>());
        List<Thread> stopping = new ArrayList<>();
        for (Entry e : all) {
            stopping.add(Thread.ofPlatform().name("stop " + e.served().options().socket.getFileName()).start(() -> {
                try {
                    e.served().running().close();
                } catch (IOException ex) {
                    failures.add(ex);
                }
            }));
        }
        boolean interrupted = false;
        for (Thread t : stopping) {
            while (true) {
                try {
                    t.join();
                    break;
                } catch (InterruptedException ex) {
                    interrupted = true; // the devices are stopping: wait for them all the same
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        for (Entry e : all.reversed()) {
            org.jvirtio.api.jfr.DeviceLifecycleEvent.emit(e.id(), e.served().name(), e.served().options().socket.toAbsolutePath().toString(),
                    "stopped");
            out.println(e.served().name() + ": stopped");
        }
        out.flush();
        if (!failures.isEmpty()) {
            throw failures.get(0);
        }
    }

    /** The next id for a device named {@code name}: blk0, blk1, ... (never one given before, nor one taken now). */
    private String nextId(String name) {
        while (true) {
            int n = nextNumber.merge(name, 1, Integer::sum) - 1;
            String id = name + n;
            if (!view.containsKey(id)) {
                return id;
            }
        }
    }

    /** A client's text in a message: at most 64 characters, control characters shown as '?'. */
    static String shorten(String s) {
        String t = s.length() > 64 ? s.substring(0, 64) + "..." : s;
        return t.replaceAll("\\p{Cntrl}", "?");
    }

    private static void closeQuietly(DeviceCommand<?> command) {
        try {
            command.close();
        } catch (IOException | RuntimeException ignored) {
            // refusing anyway
        }
    }
}
