package org.jvirtio.runner;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

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

        String reload() throws IOException {
            return running.command().reload(running.device());
        }
    }

    /**
     * Prints each device's first lines, serves them all (and their metrics on {@code metrics},
     * already bound, or null) until SIGTERM or SIGINT, then stops them all.
     */
    static int serveAll(List<Served<?>> all, PrintStream out, Metrics metrics) throws IOException, InterruptedException {
        boolean several = all.size() > 1;
        for (Served<?> d : all) {
            String what = d.describe();
            out.println(d.name + ": serving " + (what.isEmpty() ? "" : what + " ") + "on " + d.options.socket.toAbsolutePath());
            out.println("attach with QEMU:");
            out.println("  " + d.qemuFragment());
        }
        if (metrics != null) {
            metrics.serve(all);
            out.println("metrics: " + metrics.url());
        }
        out.flush();
        // Every socket listens: tell systemd (Type=notify); close inherited sockets no device took.
        VhostUserRunner.systemd().closeUnused();
        Systemd.notify("READY=1\nSTATUS=serving " + all.size() + (all.size() == 1 ? " device" : " devices"));
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
            Systemd.notify("STOPPING=1");
            stats.shutdownNow();
            if (metrics != null) {
                metrics.close();
            }
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
}
