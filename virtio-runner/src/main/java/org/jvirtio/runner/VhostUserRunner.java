package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import com.google.inject.Guice;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.jvirtio.api.QueueStats;
import org.jvirtio.transport.vhostuser.BackendOptions;
import org.jvirtio.transport.vhostuser.ControlLoop;
import org.jvirtio.transport.vhostuser.VhostUserBackend;

/**
 * {@code bin/vhost-user DEVICE --socket PATH [device flags]}: serves any device over vhost-user.
 * Devices are the {@link DeviceCommand}s found with {@link ServiceLoader} (blk and rng come with
 * jvirtio; a user's own device jar on the class path is found the same way). The runner parses the
 * common flags and the device's ({@link Flags}), composes the device with Guice, picks the queue
 * host the flags ask for, listens, prints the QEMU fragment that attaches it, and serves until
 * SIGTERM or SIGINT; SIGHUP asks the device to reload ({@link DeviceCommand#reload}). A bad flag
 * or an unusable device is one line on stderr and exit code 2, before anything listens.
 *
 * <p>Several devices in one process: {@code bin/vhost-user blk --socket a.sock --image a.img +
 * blk --socket b.sock --image b.img + rng --socket c.sock}. Each part is a whole device command
 * line with a socket of its own (a backend per VM, as qemu-storage-daemon's several
 * {@code --export}s): one JVM's fixed cost shared by them, each further device costing its
 * queues' threads and buffers. They start together (all are composed before any listens; a bad
 * part starts none) and stop together.
 */
public final class VhostUserRunner {
    /** The QEMU device name of each virtio device id QEMU has a vhost-user front-end for. */
    private static final Map<Integer, String> QEMU_NAMES = Map.of(1, "net", 2, "blk", 4, "rng", 8, "scsi", 16, "gpu",
            18, "input", 19, "vsock", 26, "fs", 34, "i2c", 41, "gpio");
    private static final Pattern DEVICE_NAME = Pattern.compile("[a-z0-9][a-z0-9-]*");
    /** Separates the devices of one process on the command line. */
    public static final String AND = "+";
    private static final String[] ABOUT = {
        "Serves a virtio device over vhost-user: QEMU (or any vhost-user front-end) connects to --socket.",
        "",
        "Restarts: a backend killed and started again on the same socket resubmits what was in flight (state lives in",
        "the inflight region QEMU keeps, nothing on disk); attach with -chardev socket,...,reconnect=1 and let a",
        "supervisor restart it (systemd: Restart=always). Live migration: dirty logging is offered (VHOST_F_LOG_ALL,",
        "LOG_SHMFD); run one backend for the source QEMU and one for the destination (-incoming) on the same image;",
        "-Djvirtio.dirty_log=off (JVIRTIO_JAVA_OPTS) stops offering it.",
        "",
        "Several devices in one process (one JVM's memory shared by them, a socket each):",
        "  vhost-user blk --socket vm1.sock --image vm1.img + blk --socket vm2.sock --image vm2.img + rng --socket vm3.sock"};

    private VhostUserRunner() {
    }

    /** A device being served: the transport, the device, the threads that run its queues. */
    public record Running<D extends VirtioDevice>(VhostUserBackend transport, D device, QueueHost host, DeviceCommand<D> command)
            implements AutoCloseable {
        /** The --stats line: every queue's counters, then the device's own (if it has any). */
        public String stats() {
            String own = command.stats(device);
            String queues = QueueStats.describe(transport.queueStats());
            return own == null ? queues : queues + " " + own;
        }

        /** Stops listening (resetting the device), ends the queue threads, then releases the device's resources. */
        @Override
        public void close() throws IOException {
            try {
                transport.close();
            } finally {
                try {
                    host.close();
                } finally {
                    command.close();
                }
            }
        }
    }

    /** Checks the flags, composes the device and starts serving it. Nothing listens if anything fails. */
    public static <D extends VirtioDevice> Running<D> start(DeviceCommand<D> command, RunnerOptions options) throws IOException {
        return listen(command, options, compose(command, options), null);
    }

    /**
     * Checks the flags and composes the device: {@code Guice.createInjector(command.modules())
     * .getInstance(command.deviceClass())}. Closes the command if that fails.
     */
    static <D extends VirtioDevice> D compose(DeviceCommand<D> command, RunnerOptions options) throws IOException {
        options.check();
        try {
            return Guice.createInjector(command.modules()).getInstance(command.deviceClass());
        } catch (com.google.inject.CreationException | com.google.inject.ConfigurationException e) {
            command.close();
            throw new IllegalArgumentException("cannot compose " + command.name() + ": " + firstMessage(e), e);
        } catch (IOException | RuntimeException e) {
            command.close();
            throw e;
        }
    }

    /** Guice's first error message, on one line: a composition mistake reads as one line like any other refusal. */
    private static String firstMessage(RuntimeException e) {
        java.util.Collection<com.google.inject.spi.Message> messages = e instanceof com.google.inject.CreationException c
                ? c.getErrorMessages() : ((com.google.inject.ConfigurationException) e).getErrorMessages();
        return messages.isEmpty() ? e.getMessage() : messages.iterator().next().getMessage().lines().findFirst().orElse("");
    }

    /**
     * The threads the devices of one process share ({@code bin/vhost-user A + B + ...}): one
     * control loop for their sockets, one set of I/O threads for their queues (as many as the
     * most any part asks for with {@code --iothreads}). Closed after every device stopped.
     */
    record Shared(ControlLoop control, IoThreads io) implements AutoCloseable {
        static Shared forParts(List<RunnerOptions> parts) {
            int threads = 1;
            for (RunnerOptions o : parts) {
                threads = Math.max(threads, o.iothreads);
            }
            return new Shared(new ControlLoop(), new IoThreads(threads, 0, 0));
        }

        /** The queue host for one part: its own thread per queue if it asks for that, else a share of the I/O threads. */
        QueueHost host(RunnerOptions o) {
            return o.threadPerQueue ? QueueHost.threadPerQueue(o.pollUs, o.pollCreditNs) : io.share(o.pollUs, o.pollCreditNs);
        }

        @Override
        public void close() {
            try {
                io.close();
            } finally {
                control.close();
            }
        }
    }

    /** Serves a composed device on its socket (on threads of its own, or {@code shared}'s); closes the command if that fails. */
    private static <D extends VirtioDevice> Running<D> listen(DeviceCommand<D> command, RunnerOptions options, D device, Shared shared)
            throws IOException {
        QueueHost host = shared == null ? options.host(device.queueCount()) : shared.host(options);
        try {
            return new Running<>(VhostUserBackend.start(options.socket, device, host,
                    new BackendOptions(options.allowUnsealedMemory, Duration.ofSeconds(options.drainTimeoutSeconds)),
                    shared == null ? null : shared.control()), device, host, command);
        } catch (IOException | RuntimeException e) {
            host.close();
            command.close();
            throw e;
        }
    }

    /**
     * Parses {@code args} (the common flags and {@code command}'s) and starts serving, without
     * waiting for a signal: for embedding the runner, and for tests.
     *
     * @throws Flags.FlagException for a bad flag, with a one-line message
     */
    public static <D extends VirtioDevice> Running<D> start(DeviceCommand<D> command, String... args) throws IOException {
        return start(command, parse(command, List.of(args)));
    }

    /** As {@link #start(DeviceCommand, String...)} with the device named first: {@code "blk", "--socket", ...}. */
    public static Running<?> start(Map<String, DeviceCommand<?>> devices, String... args) throws IOException {
        if (args.length == 0 || !devices.containsKey(args[0])) {
            throw new Flags.FlagException("name a device first: " + String.join(", ", devices.keySet()));
        }
        return start(devices.get(args[0]), java.util.Arrays.copyOfRange(args, 1, args.length));
    }

    /** The flags of {@code command} (its own, then the common ones), declared with {@code options} taking the common values. */
    static Flags flags(DeviceCommand<?> command, RunnerOptions options) {
        Flags flags = new Flags();
        flags.section("Flags of " + command.name());
        command.flags(flags);
        flags.section("Common flags");
        options.declare(flags);
        return flags;
    }

    /** Parses the common flags and {@code command}'s: the command's fields are set, the common ones returned. */
    public static RunnerOptions parse(DeviceCommand<?> command, List<String> args) {
        RunnerOptions options = new RunnerOptions();
        flags(command, options).parse(args);
        return options;
    }

    /** The QEMU command-line fragment that attaches {@code device} served on {@code options.socket}. */
    public static <D extends VirtioDevice> String qemuFragment(String name, DeviceCommand<D> command, D device, RunnerOptions options) {
        String qemu = QEMU_NAMES.get(device.deviceId());
        String id = "vu" + (qemu != null ? qemu : name) + "0";
        String dev = qemu != null ? "vhost-user-" + qemu + "-pci,chardev=" + id
                : "vhost-user-device-pci,chardev=" + id + ",virtio-id=" + device.deviceId() + " (QEMU 10.2 or later)";
        return "-object memory-backend-memfd,id=mem,size=<guest RAM, e.g. 1G>,share=on -machine memory-backend=mem"
                + " -chardev socket,id=" + id + ",path=" + options.socket.toAbsolutePath()
                + " -device " + dev + command.qemuDeviceOptions(device);
    }

    /**
     * Serves {@code command} until SIGTERM or SIGINT: the common part of every device's command.
     *
     * @param name the name to print lines under ("vhost-user-blk", "rng")
     * @return the exit code
     * @throws IllegalArgumentException or IOException when the device cannot start (nothing listens then)
     */
    public static <D extends VirtioDevice> int serve(String name, DeviceCommand<D> command, RunnerOptions options, PrintStream out)
            throws IOException, InterruptedException {
        Running<D> running = start(command, options);
        return serveAll(List.of(new Served<>(name, options, running)), out);
    }

    /** A device of this process, started, and the name its lines go under. */
    private record Served<D extends VirtioDevice>(String name, RunnerOptions options, Running<D> running) {
        /** Where its lines start: the name, and with several devices the socket that tells them apart. */
        String prefix(boolean several) {
            return several ? name + " (" + options.socket.getFileName() + "): " : name + ": ";
        }

        String describe() {
            return running.command().describe(running.device());
        }

        String qemuFragment() {
            return VhostUserRunner.qemuFragment(name, running.command(), running.device(), options);
        }

        String reload() throws IOException {
            return running.command().reload(running.device());
        }
    }

    /** Prints each device's first lines, serves them all until SIGTERM or SIGINT, then stops them all. */
    private static int serveAll(List<Served<?>> all, PrintStream out) throws IOException, InterruptedException {
        boolean several = all.size() > 1;
        for (Served<?> d : all) {
            String what = d.describe();
            out.println(d.name + ": serving " + (what.isEmpty() ? "" : what + " ") + "on " + d.options.socket.toAbsolutePath());
            out.println("attach with QEMU:");
            out.println("  " + d.qemuFragment());
        }
        out.flush();
        CountDownLatch stop = new CountDownLatch(1);
        for (String sig : new String[] {"TERM", "INT"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> stop.countDown());
        }
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), s -> {
            for (Served<?> d : all) {
                try {
                    String line = d.reload();
                    if (line != null) {
                        out.println(d.prefix(several) + line);
                    }
                } catch (IOException | RuntimeException e) {
                    out.println(d.prefix(several) + "reload failed: " + e.getMessage());
                }
            }
            out.flush();
        });
        ScheduledExecutorService stats = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().daemon().name("stats").unstarted(r));
        for (Served<?> d : all) {
            if (d.options.statsSeconds > 0) {
                stats.scheduleAtFixedRate(() -> {
                    out.println(several ? d.prefix(true) + d.running.stats() : d.running.stats());
                    out.flush();
                }, d.options.statsSeconds, d.options.statsSeconds, TimeUnit.SECONDS);
            }
        }
        try {
            stop.await();
        } finally {
            stats.shutdownNow();
            IOException failed = stopAll(all);
            for (Served<?> d : all.reversed()) {
                out.println(d.name + ": stopped");
            }
            out.flush();
            if (failed != null) {
                throw failed;
            }
        }
        return 0;
    }

    /**
     * Stops every device at once, each on a thread of its own: a stop gives a device's queues a
     * few seconds for storage that does not answer, and several devices one after the other would
     * add those up. Returns the first failure.
     */
    private static IOException stopAll(List<Served<?>> all) {
        List<IOException> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        List<Thread> stopping = new ArrayList<>();
        for (Served<?> d : all) {
            stopping.add(Thread.ofPlatform().name("stop " + d.options.socket.getFileName()).start(() -> {
                try {
                    d.running.close();
                } catch (IOException e) {
                    failures.add(e);
                }
            }));
        }
        for (Thread t : stopping) {
            boolean interrupted = false;
            while (true) {
                try {
                    t.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // the devices are stopping: wait for them all the same
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        return failures.isEmpty() ? null : failures.get(0);
    }

    /** The devices found on the class path, by subcommand name (a new instance of each per call). */
    public static Map<String, DeviceCommand<?>> devices() {
        Map<String, DeviceCommand<?>> found = new TreeMap<>();
        for (DeviceCommand<?> d : ServiceLoader.load(DeviceCommand.class)) {
            String name = d.name();
            if (name == null || !DEVICE_NAME.matcher(name).matches()) {
                throw new IllegalStateException(d.getClass().getName() + " names its subcommand '" + name
                        + "': use lower case letters, digits and dashes");
            }
            found.putIfAbsent(name, d);
        }
        return found;
    }

    /**
     * {@code bin/vhost-user}: the device named first, then its flags and the common ones.
     *
     * @return the exit code: 0 after a clean stop or help, 2 for a bad command line or a device that cannot start
     */
    public static int run(Map<String, DeviceCommand<?>> devices, String[] args, PrintStream out, PrintStream err) {
        if (args.length > 0 && (args[0].equals("-h") || args[0].equals("--help"))) {
            out.print(usage(devices));
            out.flush();
            return 0;
        }
        if (args.length == 0 || args[0].startsWith("-")) {
            return refuse(err, "vhost-user", "name a device first: " + String.join(", ", devices.keySet()));
        }
        DeviceCommand<?> command = devices.get(args[0]);
        if (command == null) {
            return refuse(err, "vhost-user", "no device named '" + args[0] + "'; found: " + String.join(", ", devices.keySet()));
        }
        List<String> all = Flags.list(args, 0);
        if (flags(command, new RunnerOptions()).end(all, 1, AND) == all.size()) {
            return runDevice("vhost-user " + command.name(), command.name(), command, all.subList(1, all.size()), out, err);
        }
        return runSeveral(devices, all, out, err);
    }

    /**
     * Several devices in one process ({@code DEVICE FLAGS + DEVICE FLAGS ...}): every part is
     * parsed and every device composed before any listens; a bad part, or two parts on one
     * socket, is one line and exit 2 with nothing listening.
     */
    private static int runSeveral(Map<String, DeviceCommand<?>> devices, List<String> args, PrintStream out, PrintStream err) {
        List<DeviceCommand<?>> commands = new ArrayList<>();
        List<RunnerOptions> options = new ArrayList<>();
        java.util.Set<java.nio.file.Path> sockets = new java.util.HashSet<>();
        int at = 0;
        while (at <= args.size()) {
            int part = commands.size() + 1;
            if (at == args.size() || args.get(at).startsWith("-") || args.get(at).equals(AND)) {
                return refuse(err, "vhost-user", "device " + part + " after '" + AND + "': name a device first: "
                        + String.join(", ", devices.keySet()));
            }
            DeviceCommand<?> known = devices.get(args.get(at));
            if (known == null) {
                return refuse(err, "vhost-user", "device " + part + ": no device named '" + args.get(at) + "'; found: "
                        + String.join(", ", devices.keySet()));
            }
            DeviceCommand<?> command = fresh(known);
            RunnerOptions o = new RunnerOptions();
            Flags flags = flags(command, o);
            int end = flags.end(args, at + 1, AND);
            List<String> own = args.subList(at + 1, end);
            if (flags.asksForHelp(own)) {
                out.print(deviceHelp("vhost-user " + command.name(), command, flags));
                out.flush();
                return 0;
            }
            try {
                flags.parse(own);
                o.check();
            } catch (IllegalArgumentException e) {
                return refuse(err, command.name() + " (device " + part + ")", e.getMessage());
            }
            if (!sockets.add(o.socket.toAbsolutePath().normalize())) {
                return refuse(err, command.name() + " (device " + part + ")", "--socket " + o.socket + " is another device's too");
            }
            commands.add(command);
            options.add(o);
            at = end + 1;
        }
        List<Composed<?>> composed = new ArrayList<>();
        List<Served<?>> started = new ArrayList<>();
        int failed = -1;
        String why = null;
        for (int i = 0; i < commands.size() && failed < 0; i++) {
            try {
                composed.add(Composed.of(commands.get(i), options.get(i))); // closes its command if it fails
            } catch (IllegalArgumentException | IOException e) {
                failed = i;
                why = e.getMessage();
            }
        }
        Shared shared = failed < 0 ? Shared.forParts(options) : null;
        for (int i = 0; i < composed.size() && failed < 0; i++) {
            try {
                started.add(composed.get(i).listen(shared)); // closes its command if it fails
            } catch (IllegalArgumentException | IOException e) {
                failed = i;
                why = e.getMessage();
            }
        }
        if (failed >= 0) {
            // Nothing serves: the started stop, the composed and not started release what modules() opened.
            for (Served<?> d : started.reversed()) {
                try {
                    d.running.close();
                } catch (IOException | RuntimeException e) {
                    // stopping anyway; the refusal below says why
                }
            }
            // Composing failed (nothing started; the one that failed closed its own command), or
            // listening did (those before it started; it closed its own).
            boolean composedAll = composed.size() == commands.size();
            for (int i = composedAll ? failed + 1 : 0; i < composed.size(); i++) {
                try {
                    commands.get(i).close();
                } catch (IOException | RuntimeException e) {
                    // as above
                }
            }
            if (shared != null) {
                shared.close();
            }
            return refuse(err, commands.get(failed).name() + " (device " + (failed + 1) + ")", why);
        }
        try (shared) {
            return serveAll(started, out);
        } catch (IOException e) {
            return refuse(err, "vhost-user", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    /** A device composed and not yet listening: the typed pair the runner carries between the two steps. */
    private record Composed<D extends VirtioDevice>(DeviceCommand<D> command, RunnerOptions options, D device) {
        static <D extends VirtioDevice> Composed<D> of(DeviceCommand<D> command, RunnerOptions options) throws IOException {
            return new Composed<>(command, options, compose(command, options));
        }

        Served<D> listen(Shared shared) throws IOException {
            return new Served<>(command.name(), options, VhostUserRunner.listen(command, options, device, shared));
        }
    }

    /** A new instance of {@code command}'s class (the runner makes one per device it starts). */
    private static DeviceCommand<?> fresh(DeviceCommand<?> command) {
        try {
            return command.getClass().getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(command.getClass().getName() + " needs a public no-argument constructor", e);
        }
    }

    /**
     * One device's command line: {@code --help}, or parse, start and serve until a signal.
     *
     * @param program how the command is invoked, for the usage line ("vhost-user blk")
     * @param name the name of the lines it prints ("blk")
     */
    public static int runDevice(String program, String name, DeviceCommand<?> command, List<String> args, PrintStream out, PrintStream err) {
        RunnerOptions options = new RunnerOptions();
        Flags flags = flags(command, options);
        if (flags.asksForHelp(args)) {
            out.print(deviceHelp(program, command, flags));
            out.flush();
            return 0;
        }
        try {
            flags.parse(args);
            return serve(name, command, options, out);
        } catch (IllegalArgumentException | IOException e) {
            return refuse(err, name, e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    private static int refuse(PrintStream err, String name, String message) {
        err.println(name + ": " + (message == null ? "" : message.replace('\n', ' ')) + " (see --help)");
        err.flush();
        return 2;
    }

    static String usage(Map<String, DeviceCommand<?>> devices) {
        StringBuilder b = new StringBuilder("Usage: vhost-user DEVICE --socket PATH [flags]\n");
        for (String line : ABOUT) {
            b.append(line).append('\n');
        }
        b.append("\nDevices found: ").append(devices.isEmpty() ? "none" : String.join(", ", devices.keySet())).append(".\n");
        int column = 6 + devices.keySet().stream().mapToInt(String::length).max().orElse(0);
        for (DeviceCommand<?> d : devices.values()) {
            Flags.appendWrapped(b, "  " + d.name(), d.description().lines().findFirst().orElse(""), column);
        }
        b.append("\nvhost-user DEVICE --help lists a device's flags.\n");
        return b.toString();
    }

    static String deviceHelp(String program, DeviceCommand<?> command, Flags flags) {
        StringBuilder b = new StringBuilder("Usage: " + program + " --socket PATH [flags]\n");
        command.description().lines().forEach(l -> b.append(l).append('\n'));
        b.append('\n').append(flags.help());
        Flags.appendWrapped(b, "  -h, --help", "Show this help and exit.", Flags.COLUMN);
        return b.toString();
    }

    public static void main(String[] args) {
        System.exit(run(devices(), args, System.out, System.err));
    }
}
