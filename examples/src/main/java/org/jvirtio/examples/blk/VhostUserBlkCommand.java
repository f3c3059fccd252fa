package org.jvirtio.examples.blk;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import com.google.inject.Guice;
import com.google.inject.Injector;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlkQueueHost;
import org.jvirtio.blk.BlkQueueStats;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.FileBackend;
import org.jvirtio.blk.NullBackend;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/vhost-user-blk}: a vhost-user-blk backend QEMU (or any vhost-user front-end) boots
 * from. The composition root of the example: flags are checked, the disk opened, then Guice
 * builds the device and the transport serves it.
 */
@Command(name = "vhost-user-blk", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"A vhost-user-blk backend in Java: QEMU connects to --socket and uses the disk as a virtio-blk device.",
            "Exactly one of --image, --ram, --null. Sizes take K, M, G suffixes (powers of 1024).",
            "SIGHUP re-reads the image size and announces a resize to the front-end; SIGTERM/SIGINT stop cleanly."})
public final class VhostUserBlkCommand implements Callable<Integer> {
    @Option(names = "--socket", required = true, paramLabel = "PATH", description = "Unix socket to listen on (created mode 0600).")
    Path socket;

    static final class Disk {
        @Option(names = "--image", paramLabel = "FILE", description = "Raw image file or block device.")
        Path image;
        @Option(names = "--ram", paramLabel = "SIZE", description = "A RAM disk of SIZE bytes.")
        String ram;
        @Option(names = "--null", paramLabel = "SIZE", description = "A null disk of SIZE bytes (reads zeros, drops writes).")
        String nullSize;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Disk disk;

    @Option(names = "--queues", defaultValue = "1", description = "Request queues (default: ${DEFAULT-VALUE}).")
    int queues;

    @Option(names = "--iothreads", defaultValue = "1",
            description = "I/O threads, each an epoll event loop; queue i runs on thread i mod N (default: ${DEFAULT-VALUE}; more than --queues is pointless).")
    int iothreads;

    @Option(names = "--queue-size", defaultValue = "1024",
            description = "Largest queue size offered; the front-end picks the size up to it (QEMU's queue-size property, 128 or 256 by default, at most 1024). seg_max is min(this, 128) - 2: set it to the front-end's ring size if that is below 128 and indirect descriptors are off (default: ${DEFAULT-VALUE}).")
    int queueSize;

    @Option(names = "--read-only", description = "Refuse writes (the disk is offered with VIRTIO_BLK_F_RO).")
    boolean readOnly;

    @Option(names = "--direct", description = "Open the image with O_DIRECT (no page cache, no FLUSH needed).")
    boolean direct;

    @Option(names = "--serial", defaultValue = "jvirtio", description = "GET_ID answer, up to 20 ASCII bytes (default: ${DEFAULT-VALUE}).")
    String serial;

    @Option(names = "--poll-us", defaultValue = "32",
            description = "Busy-poll the avail ring (and pending I/O) up to this many microseconds before sleeping; adaptive like QEMU's poll-max-ns (default: ${DEFAULT-VALUE}; 0: off).")
    int pollUs;

    @Option(names = "--stats", defaultValue = "0", paramLabel = "SECONDS", description = "Print per-queue counters every SECONDS (0: never).")
    int statsSeconds;

    /** A running backend: the transport, the device and its disk. */
    public record Running(VhostUserBackend transport, VirtioBlkDevice device, BlockBackend disk, BlkQueueHost ioThreads) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            transport.close();
            ioThreads.close();
            disk.close();
        }
    }

    static long parseSize(String flag, String s) {
        String t = s.trim().toUpperCase(Locale.ROOT);
        long mult = 1;
        if (t.endsWith("K")) {
            mult = 1L << 10;
        } else if (t.endsWith("M")) {
            mult = 1L << 20;
        } else if (t.endsWith("G")) {
            mult = 1L << 30;
        } else if (t.endsWith("T")) {
            mult = 1L << 40;
        }
        if (mult != 1) {
            t = t.substring(0, t.length() - 1);
        }
        long n;
        try {
            n = Math.multiplyExact(Long.parseLong(t), mult);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException(flag + " " + s + " is not a size (e.g. 512M, 4G)");
        }
        if (n <= 0 || n % 512 != 0) {
            throw new IllegalArgumentException(flag + " " + s + " is not a positive multiple of 512 bytes");
        }
        return n;
    }

    /** Checks the flags and opens the disk: every problem is one line, before anything listens. */
    private BlockBackend openDisk() throws IOException {
        if (queues < 1 || queues > 64) {
            throw new IllegalArgumentException("--queues must be in [1, 64], got " + queues);
        }
        if (iothreads < 1 || iothreads > 64) {
            throw new IllegalArgumentException("--iothreads must be in [1, 64], got " + iothreads);
        }
        if (pollUs < 0 || pollUs > 1_000_000 || statsSeconds < 0) {
            throw new IllegalArgumentException("--poll-us must be in [0, 1000000] and --stats not negative");
        }
        Path dir = socket.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--socket " + socket + ": directory " + dir + " does not exist");
        }
        if (disk.image != null) {
            return FileBackend.open(disk.image, readOnly, direct);
        }
        if (direct) {
            throw new IllegalArgumentException("--direct only applies to --image");
        }
        return disk.ram != null ? new RamBackend(parseSize("--ram", disk.ram)) : new NullBackend(parseSize("--null", disk.nullSize));
    }

    /** Opens the disk, composes the device with Guice and starts serving. */
    public Running start() throws IOException {
        BlkOptions options = new BlkOptions(queues, queueSize, serial, readOnly);
        BlockBackend backend = openDisk();
        try {
            Injector injector = Guice.createInjector(new VhostUserBlkModule(backend, options, iothreads, pollUs));
            VirtioBlkDevice device = injector.getInstance(VirtioBlkDevice.class);
            BlkQueueHost host = injector.getInstance(BlkQueueHost.class);
            try {
                VhostUserBackend transport = VhostUserBackend.start(socket, injector.getInstance(VirtioDevice.class));
                return new Running(transport, device, backend, host);
            } catch (IOException | RuntimeException e) {
                host.close();
                throw e;
            }
        } catch (IOException | RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    /** The QEMU command-line fragment that attaches this backend. */
    String qemuFragment() {
        return "-object memory-backend-memfd,id=mem,size=<guest RAM, e.g. 1G>,share=on -machine memory-backend=mem"
                + " -chardev socket,id=vublk0,path=" + socket.toAbsolutePath()
                + " -device vhost-user-blk-pci,chardev=vublk0,num-queues=" + queues;
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = new CommandLine(this).getOut();
        Running running;
        try {
            running = start();
        } catch (IllegalArgumentException | IOException e) {
            throw new CommandLine.ParameterException(new CommandLine(this), e.getMessage());
        }
        out.println("vhost-user-blk: serving " + running.disk().describe() + " on " + socket.toAbsolutePath());
        out.println("attach with QEMU:");
        out.println("  " + qemuFragment());
        out.flush();
        CountDownLatch stop = new CountDownLatch(1);
        for (String sig : new String[] {"TERM", "INT"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> stop.countDown());
        }
        // SIGHUP: the image was resized; pick up the new size and tell the front-end.
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), s -> {
            try {
                long sectors = running.device().refreshCapacity();
                out.println("vhost-user-blk: capacity is " + sectors + " sectors");
                out.flush();
            } catch (IOException | RuntimeException e) {
                out.println("vhost-user-blk: resize failed: " + e.getMessage());
                out.flush();
            }
        });
        ScheduledExecutorService stats = null;
        if (statsSeconds > 0) {
            stats = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("stats").unstarted(r));
            stats.scheduleAtFixedRate(() -> printStats(out, running.device()), statsSeconds, statsSeconds, TimeUnit.SECONDS);
        }
        stop.await();
        if (stats != null) {
            stats.shutdownNow();
        }
        running.close();
        out.println("vhost-user-blk: stopped");
        out.flush();
        return 0;
    }

    void printStats(PrintWriter out, VirtioBlkDevice device) {
        StringBuilder sb = new StringBuilder("stats:");
        for (int q = 0; q < queues; q++) {
            BlkQueueStats s = device.stats(q);
            sb.append(String.format(" q%d requests=%d bytes=%d errors=%d in-flight=%d", q, s.requests(), s.bytes(), s.errors(), s.inFlight()));
        }
        out.println(sb);
        out.flush();
    }

    /** The command line: a bad flag or unusable disk is one line on stderr and exit code 2. */
    public static CommandLine commandLine() {
        CommandLine cmd = new CommandLine(new VhostUserBlkCommand());
        cmd.setParameterExceptionHandler((ex, args) -> {
            cmd.getErr().println("vhost-user-blk: " + ex.getMessage() + " (see --help)");
            cmd.getErr().flush();
            return 2;
        });
        return cmd;
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
