package org.jvirtio.examples.mmio;

import java.io.PrintWriter;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import java.util.concurrent.Callable;

import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestRegion;
import org.jvirtio.api.MemoryMapping;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.RamBackend;
import org.jvirtio.blk.VirtioBlk;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.host.IoThreads;
import org.jvirtio.ring.QueueDriver;
import org.jvirtio.rng.EntropySource;
import org.jvirtio.rng.VirtioRng;
import org.jvirtio.transport.mmio.InterruptLine;
import org.jvirtio.transport.mmio.MmioDriver;
import org.jvirtio.transport.mmio.MmioTransport;
import org.jvirtio.examples.cli.Cli;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * bin/mmio-demo: what a Java VMM does with jvirtio's MMIO transport. An in-process "bus" with two
 * virtio-mmio windows, virtio-blk on a RAM disk at 0xd0000000 and virtio-rng at 0xd0000200, each
 * with its own interrupt eventfd, over one guest memory; the Java MMIO driver (as Linux's
 * virtio_mmio.c) probes and initializes both, then writes, flushes, reads back and verifies
 * blocks and reads random bytes, printing what each step did.
 */
@Command(name = "mmio-demo", mixinStandardHelpOptions = true,
        description = "virtio-blk (RAM disk) and virtio-rng behind virtio-mmio windows, driven by the Java MMIO driver.")
public final class MmioDemo implements Callable<Integer> {
    static final long BLK_BASE = 0xd000_0000L;
    static final long RNG_BASE = 0xd000_0200L;
    static final long RAM = 16 << 20;

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--requests", defaultValue = "64", description = "4 KiB blocks written, read back and verified (default: ${DEFAULT-VALUE}).")
    int requests;

    @Option(names = "--trace", description = "Print every register access.")
    boolean trace;

    @Override
    public Integer call() throws Exception {
        if (requests < 1 || requests > 1024) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--requests must be in [1, 1024]");
        }
        PrintWriter out = spec.commandLine().getOut();
        MemoryMapping ram = MemoryMapping.memfd("guest-ram", RAM);
        GuestMemory memory = GuestMemory.of(GuestRegion.of(0, ram));
        ram.release();
        VirtioBlkDevice blk = new VirtioBlkDevice(new RamBackend(requests * 4096L + (1 << 20)), new BlkOptions(1, 256, "mmio-demo", false));
        IoThreads host = new IoThreads(1, 0);
        try (EventFd blkIrq = EventFd.create(true); EventFd rngIrq = EventFd.create(true);
             MmioTransport blkDev = new MmioTransport(blk, memory, host, InterruptLine.eventFd(blkIrq));
             MmioTransport rngDev = new MmioTransport(new VirtioRng(EntropySource.getrandom()), memory, host, InterruptLine.eventFd(rngIrq))) {
            MmioBus bus = new MmioBus();
            bus.map(BLK_BASE, blkDev);
            bus.map(RNG_BASE, rngDev);
            out.printf("bus: virtio-blk at 0x%x (irq eventfd %d), virtio-rng at 0x%x (irq eventfd %d), %d MiB of guest RAM%n", BLK_BASE,
                    blkIrq.fd(), RNG_BASE, rngIrq.fd(), RAM >> 20);
            out.printf("bus: a read where no window is gives 0x%x%n", bus.read(0xd000_0400L, 4));
            PrintWriter t = trace ? out : null;
            demoBlk(out, MmioDriver.probe(bus.at(BLK_BASE, t), memory, 0x100000, 0x700000, blkIrq), memory);
            demoRng(out, MmioDriver.probe(bus.at(RNG_BASE, t), memory, 0x800000, 0x700000, rngIrq), memory);
            out.println("done: both devices reset");
        } finally {
            host.close();
            blk.backend().close();
            memory.release();
        }
        out.flush();
        return 0;
    }

    private static MmioDriver.Queue init(PrintWriter out, String name, MmioDriver d, long wanted, int size) throws Exception {
        out.printf("%s: probe: magic \"virt\", version 2, device id %d; reset (status %s)%n", name, d.deviceId(), DeviceStatus.describe(d.status()));
        long f = d.negotiate(wanted);
        out.printf("%s: ACKNOWLEDGE, DRIVER; device offers 0x%x, driver takes 0x%x; FEATURES_OK kept (status %s)%n", name,
                d.deviceFeatures(), f, DeviceStatus.describe(d.status()));
        MmioDriver.Queue q = d.setupQueue(0, size);
        out.printf("%s: queue 0: not ready, %d entries at desc 0x%x avail 0x%x used 0x%x; ready%n", name, q.ring().size(),
                q.ring().descAddr(), q.ring().availAddr(), q.ring().usedAddr());
        d.driverOk();
        out.printf("%s: DRIVER_OK (status %s)%n", name, DeviceStatus.describe(d.status()));
        return q;
    }

    private void demoBlk(PrintWriter out, MmioDriver d, GuestMemory mem) throws Exception {
        MmioDriver.Queue q = init(out, "blk", d, ~0L, 128);
        long sectors = ByteBuffer.wrap(d.readConfig(VirtioBlk.CFG_CAPACITY, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
        out.printf("blk: config (read under ConfigGeneration): capacity %d sectors (%d KiB)%n", sectors, sectors / 2);
        long hdr = d.allocate(16L * 32, 16);
        long status = d.allocate(32, 1);
        long data = d.allocate(4096L * 32, 4096);
        byte[][] written = new byte[requests][4096];
        Random rnd = new Random(42);
        int interrupts = 0;
        for (int type : new int[] {VirtioBlk.T_OUT, VirtioBlk.T_FLUSH, VirtioBlk.T_IN}) {
            int n = type == VirtioBlk.T_FLUSH ? 1 : requests;
            for (int first = 0; first < n; first += 32) {
                int batch = Math.min(32, n - first);
                for (int i = 0; i < batch; i++) {
                    int r = first + i;
                    mem.writeU32(hdr + 16L * i, type);
                    mem.writeU32(hdr + 16L * i + 4, 0);
                    mem.writeU64(hdr + 16L * i + 8, 8L * r);
                    mem.writeU8(status + i, 0xee);
                    long[] addrs;
                    int[] lens;
                    if (type == VirtioBlk.T_FLUSH) {
                        addrs = new long[] {hdr + 16L * i, status + i};
                        lens = new int[] {16, 1};
                    } else {
                        if (type == VirtioBlk.T_OUT) {
                            rnd.nextBytes(written[r]);
                            mem.write(data + 4096L * i, MemorySegment.ofArray(written[r]));
                        }
                        addrs = new long[] {hdr + 16L * i, data + 4096L * i, status + i};
                        lens = new int[] {16, 4096, 1};
                    }
                    if (q.ring().add(addrs, lens, addrs.length, type == VirtioBlk.T_IN ? 1 : addrs.length - 1, r) < 0) {
                        throw new IllegalStateException("ring full");
                    }
                }
                q.publish();
                interrupts += awaitAll(d, q.ring(), batch);
                for (int i = 0; i < batch; i++) {
                    if (mem.readU8(status + i) != VirtioBlk.S_OK) {
                        throw new IllegalStateException("request " + (first + i) + " failed with status " + mem.readU8(status + i));
                    }
                    if (type == VirtioBlk.T_IN) {
                        byte[] back = new byte[4096];
                        mem.read(data + 4096L * i, MemorySegment.ofArray(back));
                        if (!Arrays.equals(back, written[first + i])) {
                            throw new IllegalStateException("block " + (first + i) + " reads back differently");
                        }
                    }
                }
            }
            out.printf("blk: %s: %d request%s, all OK%s%n", type == VirtioBlk.T_OUT ? "write" : type == VirtioBlk.T_IN ? "read" : "flush", n,
                    n == 1 ? "" : "s", type == VirtioBlk.T_IN ? "; every block verified against what was written" : "");
        }
        out.printf("blk: %d interrupts handled (InterruptStatus read, then acknowledged)%n", interrupts);
        d.reset();
    }

    private static void demoRng(PrintWriter out, MmioDriver d, GuestMemory mem) throws Exception {
        MmioDriver.Queue q = init(out, "rng", d, ~0L, 64);
        long buf = d.allocate(64, 64);
        q.ring().add(new long[] {buf}, new int[] {64}, 1, 0, 0);
        q.publish();
        awaitAll(d, q.ring(), 1);
        byte[] b = new byte[32];
        mem.read(buf, MemorySegment.ofArray(b));
        out.printf("rng: 64 random bytes, the first 32: %s%n", HexFormat.of().formatHex(b));
        d.reset();
    }

    /** Waits on the interrupt line for {@code n} used elements; returns the interrupts handled. */
    private static int awaitAll(MmioDriver d, QueueDriver ring, int n) throws Exception {
        int got = 0;
        int interrupts = 0;
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (got < n) {
            got += ring.pollUsed((h, t, l) -> { });
            if (got < n && !ring.enableInterrupts()) {
                if (d.awaitInterrupt(100) != 0) {
                    interrupts++;
                }
                if (System.nanoTime() - deadline > 0) {
                    throw new IllegalStateException("the device did not answer within 10 s (" + got + " of " + n + ")");
                }
            }
        }
        return interrupts;
    }

    public static CommandLine commandLine() {
        return Cli.of("mmio-demo", new MmioDemo());
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
