package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.jvirtio.api.VirtioDevice;
import org.jvirtio.runner.VhostUserRunner.Running;
import org.jvirtio.transport.vhostuser.Systemd;

/**
 * Serving started devices until a signal: their first lines (what is served, the QEMU fragment),
 * SIGHUP (each device reloads), {@code --stats}, and on SIGTERM or SIGINT the stop of all of them
 * at once.
 */
final class Serving {
    private Serving() {
    }

    /** A device of this process, started, and the name its lines go under. */
    record Served<D extends VirtioDevice>(String name, RunnerOptions options, Running<D> running) {
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

        /** The device's own counters (its command's stats line), or null. */
        String deviceStats() {
            return running.command().stats(running.device());
        }

        String reload() throws IOException {
            return running.command().reload(running.device());
        }
    }

    /**
     * Serves {@code devices} (their first lines already printed), their metrics on {@code metrics}
     * (already bound, or null) and the control socket {@code control} (or null) until SIGTERM or
     * SIGINT, then stops them all.
     */
    static int serveAll(DeviceSet devices, PrintStream out, Metrics metrics, ControlServer control) throws IOException, InterruptedException {
        if (metrics != null) {
            metrics.serve(devices);
            if (metrics.hasEndpoint()) {
                out.println("metrics: " + metrics.url());
            }
        }
        if (control != null) {
            control.start();
            out.println("control: listening on " + control.path().toAbsolutePath());
        }
        out.flush();
        // Every socket listens: tell systemd (Type=notify). Inherited sockets no device took are
        // closed; with a control socket they wait for devices added later on their paths.
        if (control == null) {
            VhostUserRunner.systemd().closeUnused();
        }
        Systemd.notify("READY=1\nSTATUS=serving " + devices.size() + (devices.size() == 1 ? " device" : " devices"));
        CountDownLatch stop = new CountDownLatch(1);
        for (String sig : new String[] {"TERM", "INT"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> stop.countDown());
        }
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), s -> devices.reloadAll());
        try {
            stop.await();
        } finally {
            Systemd.notify("STOPPING=1");
            try {
                if (control != null) {
                    control.close(); // no change starts after this; one under way has ended
                }
            } finally {
                try {
                    devices.close();
                } finally {
                    if (metrics != null) {
                        metrics.close();
                    }
                }
            }
        }
        return 0;
    }

    /** As {@link #serveAll(DeviceSet, PrintStream, Metrics, ControlServer)} for devices started together, without a control socket. */
    static int serveAll(List<Served<?>> all, PrintStream out, Metrics metrics) throws IOException, InterruptedException {
        DeviceSet devices = new DeviceSet(Map.of(), null, metrics, out, all.size() > 1);
        devices.adopt(all);
        return serveAll(devices, out, metrics, null);
    }
}
