package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.regex.Pattern;


import com.google.inject.Guice;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;
import org.jvirtio.host.QueueHost;
import org.jvirtio.api.QueueStats;
import org.jvirtio.transport.vhostuser.BackendOptions;
import org.jvirtio.transport.vhostuser.ControlLoop;
import org.jvirtio.transport.vhostuser.Systemd;
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
        "  vhost-user blk --socket vm1.sock --image vm1.img + blk --socket vm2.sock --image vm2.img + rng --socket vm3.sock",
        "",
        "Devices added and removed while the process runs, through its control socket (HTTP/JSON, owner only):",
        "  vhost-user --control ctl.sock [--metrics HOST:PORT] [--iothreads N] [DEVICE FLAGS [+ DEVICE FLAGS]...]",
        "  vhost-user ctl --control ctl.sock add blk --socket vm4.sock --image vm4.img   (list, show, remove, stats, reload,",
        "  log-level, metrics; vhost-user ctl --help)"};

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

    private static final class InheritedSockets {
        static final Systemd SYSTEMD = Systemd.fromEnvironment();
    }

    /** The listening sockets systemd passed this process (socket activation), read once. */
    static Systemd systemd() {
        return InheritedSockets.SYSTEMD;
    }

    /** Serves a composed device on its socket (on threads of its own, or {@code shared}'s); closes the command if that fails. */
    static <D extends VirtioDevice> Running<D> listen(DeviceCommand<D> command, RunnerOptions options, D device, SeveralDevices.Shared shared)
            throws IOException {
        QueueHost host = shared == null ? options.host(device.queueCount()) : shared.host(options);
        try {
            BackendOptions b = new BackendOptions(options.allowUnsealedMemory, Duration.ofSeconds(options.drainTimeoutSeconds));
            ControlLoop control = shared == null ? null : shared.control();
            int inherited = systemd().take(options.socket);
            return new Running<>(inherited >= 0 ? VhostUserBackend.adopt(options.socket, inherited, device, host, b, control)
                    : VhostUserBackend.start(options.socket, device, host, b, control), device, host, command);
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
        if (device.deviceId() == 1) {
            // virtio-net is QEMU's own device with a vhost-user netdev (there is no vhost-user-net-pci)
            int pairs = device.queueCount() / 2;
            return "-object memory-backend-memfd,id=mem,size=<guest RAM, e.g. 1G>,share=on -machine memory-backend=mem"
                    + " -chardev socket,id=" + id + ",path=" + options.socket.toAbsolutePath()
                    + " -netdev vhost-user,id=" + id + "n,chardev=" + id + (pairs > 1 ? ",queues=" + pairs : "")
                    + " -device virtio-net-pci,netdev=" + id + "n" + command.qemuDeviceOptions(device);
        }
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
        Metrics metrics = options.metrics == null ? null : Metrics.bind(options.metrics);
        Running<D> running;
        try {
            running = start(command, options);
        } catch (IOException | RuntimeException e) {
            if (metrics != null) {
                metrics.close();
            }
            throw e;
        }
        return Serving.serveAll(List.of(new Serving.Served<>(name, options, running)), out, metrics);
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
        if (args.length > 0 && args[0].equals("ctl")) {
            return ControlClient.run(Flags.list(args, 1), out, err);
        }
        List<String> given = Flags.list(args, 0);
        int processEnd = ProcessOptions.end(given);
        if (processEnd > 0) {
            // The process's flags first (--control, --metrics, --iothreads), then any devices.
            ProcessOptions process;
            try {
                process = ProcessOptions.parse(given.subList(0, processEnd));
            } catch (IllegalArgumentException e) {
                return refuse(err, "vhost-user", e.getMessage());
            }
            List<String> parts = given.subList(processEnd, given.size());
            if (process.control == null && (parts.isEmpty() || parts.get(0).startsWith("-"))) {
                return refuse(err, "vhost-user", "name a device first: " + String.join(", ", devices.keySet())
                        + " (or give --control PATH to start with none)");
            }
            if (!parts.isEmpty() && parts.get(0).startsWith("-")) {
                return refuse(err, "vhost-user", "name a device first: " + String.join(", ", devices.keySet())
                        + " (before it only --control, --metrics and --iothreads)");
            }
            return SeveralDevices.run(devices, process, parts, out, err);
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
        return SeveralDevices.run(devices, new ProcessOptions(), all, out, err);
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

    static int refuse(PrintStream err, String name, String message) {
        err.println(name + ": " + (message == null ? "" : message.replace('\n', ' ')) + " (see --help)");
        err.flush();
        return 2;
    }

    static String usage(Map<String, DeviceCommand<?>> devices) {
        StringBuilder b = new StringBuilder("Usage: vhost-user [--control PATH] DEVICE --socket PATH [flags] [+ DEVICE ...]\n       vhost-user ctl --control PATH OPERATION\n");
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
