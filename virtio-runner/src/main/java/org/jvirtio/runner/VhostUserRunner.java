package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import com.google.inject.Guice;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.host.QueueHost;
import org.jvirtio.host.QueueStats;
import org.jvirtio.transport.vhostuser.BackendOptions;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParseResult;

/**
 * {@code bin/vhost-user DEVICE --socket PATH [device options]}: serves any device over vhost-user.
 * Devices are the {@link DeviceCommand}s found with {@link ServiceLoader} (blk and rng come with
 * jvirtio; a user's own device jar on the class path is found the same way). The runner composes
 * the device with Guice, picks the queue host the flags ask for, listens, prints the QEMU
 * fragment that attaches it, and serves until SIGTERM or SIGINT; SIGHUP asks the device to
 * reload ({@link DeviceCommand#reload}).
 */
@Command(name = "vhost-user", mixinStandardHelpOptions = true, synopsisSubcommandLabel = "DEVICE",
        description = {"Serves a virtio device over vhost-user: QEMU (or any vhost-user front-end) connects to --socket.",
            "bin/vhost-user DEVICE --help lists a device's flags.",
            "",
            "Restarts: a backend killed and started again on the same socket resubmits what was in flight (state lives in",
            "the inflight region QEMU keeps, nothing on disk); attach with -chardev socket,...,reconnect=1 and let a",
            "supervisor restart it (systemd: Restart=always). Live migration: dirty logging is offered (VHOST_F_LOG_ALL,",
            "LOG_SHMFD); run one backend for the source QEMU and one for the destination (-incoming) on the same image;",
            "-Djvirtio.dirty_log=off (JVIRTIO_JAVA_OPTS) stops offering it."})
public final class VhostUserRunner {
    /** The QEMU device name of each virtio device id QEMU has a vhost-user front-end for. */
    private static final Map<Integer, String> QEMU_NAMES = Map.of(1, "net", 2, "blk", 4, "rng", 8, "scsi", 16, "gpu",
            18, "input", 19, "vsock", 26, "fs", 34, "i2c", 41, "gpio");

    private VhostUserRunner() {
    }

    /** A device being served: the transport, the device, the threads that run its queues. */
    public record Running(VhostUserBackend transport, VirtioDevice device, QueueHost host, DeviceCommand command) implements AutoCloseable {
        /** The --stats line: the device's own, or the engine's per-queue counts. */
        public String stats() {
            String own = command.stats(device);
            return own != null ? own : QueueStats.describe(transport.queueStats());
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
    public static Running start(DeviceCommand command, RunnerOptions options) throws IOException {
        options.check();
        VirtioDevice device;
        try {
            device = Guice.createInjector(command.module()).getInstance(VirtioDevice.class);
        } catch (IOException | RuntimeException e) {
            command.close();
            throw e;
        }
        QueueHost host = options.host(device.queueCount());
        try {
            return new Running(VhostUserBackend.start(options.socket, device, host, new BackendOptions(options.allowUnsealedMemory, java.time.Duration.ofSeconds(options.drainTimeoutSeconds))), device, host, command);
        } catch (IOException | RuntimeException e) {
            host.close();
            command.close();
            throw e;
        }
    }

    /**
     * Parses {@code args} as {@code bin/vhost-user} does ({@code DEVICE --socket PATH ...}) and
     * starts serving, without waiting for a signal: for embedding the runner, and for tests.
     */
    public static Running start(Map<String, DeviceCommand> devices, String... args) throws IOException {
        ParseResult pr = commandLine(devices).parseArgs(args);
        if (!pr.hasSubcommand()) {
            throw new IllegalArgumentException("name a device: " + String.join(", ", devices.keySet()));
        }
        CommandSpec sub = pr.subcommand().commandSpec();
        return start((DeviceCommand) sub.userObject(), (RunnerOptions) sub.mixins().get("runner").userObject());
    }

    /** The QEMU command-line fragment that attaches {@code device} served on {@code options.socket}. */
    public static String qemuFragment(String name, DeviceCommand command, VirtioDevice device, RunnerOptions options) {
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
     */
    public static int serve(String name, CommandSpec spec, DeviceCommand command, RunnerOptions options) throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Running running;
        try {
            running = start(command, options);
        } catch (IllegalArgumentException | IOException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        String what = command.describe();
        out.println(name + ": serving " + (what.isEmpty() ? "" : what + " ") + "on " + options.socket.toAbsolutePath());
        out.println("attach with QEMU:");
        out.println("  " + qemuFragment(name, command, running.device(), options));
        out.flush();
        CountDownLatch stop = new CountDownLatch(1);
        for (String sig : new String[] {"TERM", "INT"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> stop.countDown());
        }
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), s -> {
            try {
                String line = command.reload(running.device());
                if (line != null) {
                    out.println(name + ": " + line);
                }
            } catch (IOException | RuntimeException e) {
                out.println(name + ": reload failed: " + e.getMessage());
            }
            out.flush();
        });
        ScheduledExecutorService stats = null;
        if (options.statsSeconds > 0) {
            stats = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("stats").unstarted(r));
            stats.scheduleAtFixedRate(() -> {
                out.println(running.stats());
                out.flush();
            }, options.statsSeconds, options.statsSeconds, TimeUnit.SECONDS);
        }
        stop.await();
        if (stats != null) {
            stats.shutdownNow();
        }
        running.close();
        out.println(name + ": stopped");
        out.flush();
        return 0;
    }

    /** The devices found on the class path, by subcommand name. */
    public static Map<String, DeviceCommand> devices() {
        Map<String, DeviceCommand> found = new TreeMap<>();
        for (DeviceCommand d : ServiceLoader.load(DeviceCommand.class)) {
            Command c = d.getClass().getAnnotation(Command.class);
            if (c == null || c.name().equals("<main class>")) {
                throw new IllegalStateException(d.getClass().getName() + " has no @Command(name = ...): the runner cannot name its subcommand");
            }
            found.putIfAbsent(c.name(), d);
        }
        return found;
    }

    /** The command line: one subcommand per device; a bad flag or an unusable device is one line on stderr and exit code 2. */
    public static CommandLine commandLine(Map<String, DeviceCommand> devices) {
        CommandLine cmd = new CommandLine(new VhostUserRunner());
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, DeviceCommand> e : devices.entrySet()) {
            CommandLine sub = new CommandLine(e.getValue());
            sub.addMixin("runner", new RunnerOptions());
            sub.getCommandSpec().mixinStandardHelpOptions(true);
            cmd.addSubcommand(e.getKey(), sub);
            names.add(e.getKey());
        }
        cmd.getCommandSpec().usageMessage().footer("", "Devices found: " + (names.isEmpty() ? "none" : String.join(", ", names)) + ".");
        cmd.setExecutionStrategy(VhostUserRunner::execute);
        CommandLine.IParameterExceptionHandler errors = (ex, args) -> {
            ex.getCommandLine().getErr().println("vhost-user: " + ex.getMessage() + " (see --help)");
            ex.getCommandLine().getErr().flush();
            return 2;
        };
        cmd.setParameterExceptionHandler(errors);
        return cmd;
    }

    private static int execute(ParseResult pr) throws CommandLine.ExecutionException, CommandLine.ParameterException {
        Integer help = CommandLine.executeHelpRequest(pr);
        if (help != null) {
            return help;
        }
        if (!pr.hasSubcommand()) {
            throw new CommandLine.ParameterException(pr.commandSpec().commandLine(), "name a device: "
                    + String.join(", ", pr.commandSpec().subcommands().keySet()));
        }
        CommandSpec sub = pr.subcommand().commandSpec();
        DeviceCommand device = (DeviceCommand) sub.userObject();
        RunnerOptions options = (RunnerOptions) sub.mixins().get("runner").userObject();
        try {
            return serve(sub.name(), sub, device, options);
        } catch (CommandLine.ParameterException e) {
            throw e;
        } catch (Exception e) {
            throw new CommandLine.ExecutionException(sub.commandLine(), sub.name() + ": " + e.getMessage(), e);
        }
    }

    public static void main(String[] args) {
        System.exit(commandLine(devices()).execute(args));
    }
}
