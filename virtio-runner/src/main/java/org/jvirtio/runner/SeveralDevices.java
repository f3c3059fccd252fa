package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.jvirtio.api.VirtioDevice;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;
import org.jvirtio.host.IoThreads;
import org.jvirtio.host.QueueHost;
import org.jvirtio.transport.vhostuser.ControlLoop;

/**
 * Several devices in one process: {@code bin/vhost-user blk --socket a.sock --image a.img + blk
 * --socket b.sock --image b.img + rng --socket c.sock}. Each part is a whole device command line
 * with a socket of its own (a backend per VM, as qemu-storage-daemon's several {@code --export}s);
 * all are parsed and composed before any listens, and they share the process's threads
 * ({@link Shared}).
 */
final class SeveralDevices {
    private SeveralDevices() {
    }

    /**
     * The threads the devices of one process share ({@code bin/vhost-user A + B + ...}): one
     * control loop for their sockets, one set of I/O threads for their queues (as many as the
     * most any part asks for with {@code --iothreads}). Closed after every device stopped.
     */
    record Shared(ControlLoop control, IoThreads io) implements AutoCloseable {
        static Shared forParts(List<RunnerOptions> parts, int atLeast) {
            int threads = Math.max(1, atLeast);
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

    /**
     * Several devices in one process ({@code DEVICE FLAGS + DEVICE FLAGS ...}), and a process
     * with a control socket ({@code --control PATH [DEVICE FLAGS ...]}, {@code process}): every
     * part is parsed and every device composed before any listens; a bad part, or two parts on
     * one socket, is one line and exit 2 with nothing listening.
     */
    static int run(Map<String, DeviceCommand<?>> devices, ProcessOptions process, List<String> args, PrintStream out, PrintStream err) {
        List<DeviceCommand<?>> commands = new ArrayList<>();
        List<RunnerOptions> options = new ArrayList<>();
        java.util.Set<java.nio.file.Path> sockets = new java.util.HashSet<>();
        if (process.control != null) {
            sockets.add(process.control.toAbsolutePath().normalize());
        }
        int at = 0;
        while (at < args.size() || (at == args.size() && at > 0 && args.get(at - 1).equals(VhostUserRunner.AND))) {
            int part = commands.size() + 1;
            if (at == args.size() || args.get(at).startsWith("-") || args.get(at).equals(VhostUserRunner.AND)) {
                return VhostUserRunner.refuse(err, "vhost-user", "device " + part + " after '" + VhostUserRunner.AND + "': name a device first: "
                        + String.join(", ", devices.keySet()));
            }
            DeviceCommand<?> known = devices.get(args.get(at));
            if (known == null) {
                return VhostUserRunner.refuse(err, "vhost-user", "device " + part + ": no device named '" + args.get(at) + "'; found: "
                        + String.join(", ", devices.keySet()));
            }
            DeviceCommand<?> command = fresh(known);
            RunnerOptions o = new RunnerOptions();
            Flags flags = VhostUserRunner.flags(command, o);
            int end = flags.end(args, at + 1, VhostUserRunner.AND);
            List<String> own = args.subList(at + 1, end);
            if (flags.asksForHelp(own)) {
                out.print(VhostUserRunner.deviceHelp("vhost-user " + command.name(), command, flags));
                out.flush();
                return 0;
            }
            try {
                flags.parse(own);
                o.check();
            } catch (IllegalArgumentException e) {
                return VhostUserRunner.refuse(err, command.name() + " (device " + part + ")", e.getMessage());
            }
            if (!sockets.add(o.socket.toAbsolutePath().normalize())) {
                return VhostUserRunner.refuse(err, command.name() + " (device " + part + ")", "--socket " + o.socket
                        + (o.socket.toAbsolutePath().normalize().equals(process.control == null ? null : process.control.toAbsolutePath().normalize())
                        ? " is the control socket" : " is another device's too"));
            }
            commands.add(command);
            options.add(o);
            at = end + 1;
        }
        java.util.Set<String> metrics = new java.util.TreeSet<>();
        if (process.metrics != null) {
            metrics.add(process.metrics);
        }
        for (RunnerOptions o : options) {
            if (o.metrics != null) {
                metrics.add(o.metrics);
            }
        }
        if (metrics.size() > 1) {
            return VhostUserRunner.refuse(err, "vhost-user", "--metrics is the process's: give one HOST:PORT, not " + String.join(" and ", metrics));
        }
        Metrics boundMetrics;
        try {
            boundMetrics = !metrics.isEmpty() ? Metrics.bind(metrics.iterator().next())
                    : process.control != null ? Metrics.withoutEndpoint() : null;
        } catch (IOException | IllegalArgumentException e) {
            for (DeviceCommand<?> c : commands) {
                try {
                    c.close();
                } catch (IOException | RuntimeException ignored) {
                    // refusing anyway
                }
            }
            return VhostUserRunner.refuse(err, "vhost-user", e.getMessage());
        }
        List<Composed<?>> composed = new ArrayList<>();
        List<Serving.Served<?>> started = new ArrayList<>();
        int failed = -1;
        String why = null;
        String who = null;
        for (int i = 0; i < commands.size() && failed < 0; i++) {
            try {
                composed.add(Composed.of(commands.get(i), options.get(i))); // closes its command if it fails
            } catch (IllegalArgumentException | IOException e) {
                failed = i;
                why = e.getMessage();
            }
        }
        Shared shared = failed < 0 ? Shared.forParts(options, process.iothreads) : null;
        DeviceSet set = shared == null ? null : new DeviceSet(devices, shared, boundMetrics, out, true);
        ControlServer control = null;
        if (set != null && process.control != null) {
            try {
                control = ControlServer.bind(process.control, set, boundMetrics);
            } catch (IOException e) {
                failed = 0;
                who = "vhost-user";
                why = e.getMessage();
            }
        }
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
            for (Serving.Served<?> d : started.reversed()) {
                try {
                    d.running().close();
                } catch (IOException | RuntimeException e) {
                    // stopping anyway; the refusal below says why
                }
            }
            // Composing failed (nothing started; the one that failed closed its own command), or
            // listening did (those before it started; it closed its own), or the control socket
            // (none started, none closed).
            boolean composedAll = composed.size() == commands.size();
            int from = who != null ? 0 : composedAll ? failed + 1 : 0;
            for (int i = from; i < composed.size(); i++) {
                try {
                    commands.get(i).close();
                } catch (IOException | RuntimeException e) {
                    // as above
                }
            }
            if (control != null) {
                control.close();
            }
            if (shared != null) {
                shared.close();
            }
            if (boundMetrics != null) {
                boundMetrics.close();
            }
            return VhostUserRunner.refuse(err, who != null ? who : commands.get(failed).name() + " (device " + (failed + 1) + ")", why);
        }
        set.adopt(started);
        try (shared) {
            return Serving.serveAll(set, out, boundMetrics, control);
        } catch (IOException e) {
            return VhostUserRunner.refuse(err, "vhost-user", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    /** A device composed and not yet listening: the typed pair the runner carries between the two steps. */
    private record Composed<D extends VirtioDevice>(DeviceCommand<D> command, RunnerOptions options, D device) {
        static <D extends VirtioDevice> Composed<D> of(DeviceCommand<D> command, RunnerOptions options) throws IOException {
            return new Composed<>(command, options, VhostUserRunner.compose(command, options));
        }

        Serving.Served<D> listen(Shared shared) throws IOException {
            return new Serving.Served<>(command.name(), options, VhostUserRunner.listen(command, options, device, shared));
        }
    }

    /** A new instance of {@code command}'s class (the runner makes one per device it starts). */
    static DeviceCommand<?> fresh(DeviceCommand<?> command) {
        try {
            return command.getClass().getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(command.getClass().getName() + " needs a public no-argument constructor", e);
        }
    }
}
