package org.jvirtio.transport.mmio;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import org.jvirtio.testkit.EchoDevice;
import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.SplitQueueDriver;
import org.jvirtio.testkit.TestMemory;

import static org.jvirtio.transport.mmio.MmioRegisters.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Coverage-guided fuzzing of the MMIO register file (issues 11 and 14): the input is a sequence
 * of accesses (mostly to real registers with plausible values: queue setup, status steps, feature
 * words, notifications, acknowledgements, config space; sometimes any offset, width and value),
 * with the rings it points at in guest memory. Nothing may throw into the caller; the magic,
 * version and device id always read right; InterruptStatus only holds defined bits; and after
 * whatever the input did, a correct initialization answers a request. The queues run on an I/O
 * thread, as in a VMM, so stops and resets happen while they serve; one window serves every
 * input (each starts with a reset, which is itself under test).
 *
 * <p>Plain {@code verify} runs the committed inputs under {@code RegisterFileFuzzTestInputs};
 * {@code JAZZER_FUZZ=1} fuzzes (bench/fuzz.sh mmio).
 */
class RegisterFileFuzzTest {
    static final long MEM = 1 << 20;
    static final int[] REGS = {MAGIC_VALUE, VERSION_REG, DEVICE_ID, VENDOR_ID, DEVICE_FEATURES, DEVICE_FEATURES_SEL, DRIVER_FEATURES,
        DRIVER_FEATURES_SEL, QUEUE_SEL, QUEUE_NUM_MAX, QUEUE_NUM, QUEUE_READY, QUEUE_NOTIFY, INTERRUPT_STATUS, INTERRUPT_ACK, STATUS,
        QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, SHM_SEL, SHM_LEN_LOW,
        SHM_BASE_LOW, QUEUE_RESET, CONFIG_GENERATION, CONFIG, CONFIG + 4};
    static final GuestMemory MEMORY;
    /** One device, host and window for every input (each input starts with a reset): creating them per input is slow. */
    static final EchoDevice DEVICE = new EchoDevice(2).queueSizeLimit(64).configBytes(8);
    static final org.jvirtio.host.IoThreads HOST = new org.jvirtio.host.IoThreads(1, 0);
    static final MmioTransport T;

    static {
        try {
            MEMORY = TestMemory.memfd(MEM);
            T = new MmioTransport(DEVICE, MEMORY, HOST, InterruptLine.NONE);
        } catch (Exception e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void anyAccessSequenceLeavesAWorkingDevice(FuzzedDataProvider data) throws Exception {
        MmioTransport t = T;
        t.write(STATUS, 4, 0);
        {
            int n = data.consumeInt(0, 64);
            for (int i = 0; i < n && data.remainingBytes() > 0; i++) {
                long off;
                int width;
                if (data.consumeInt(0, 9) == 0) {
                    off = data.consumeLong();
                    width = data.consumeInt(-1, 9);
                } else {
                    off = REGS[data.consumeInt(0, REGS.length - 1)];
                    width = data.consumeInt(0, 15) == 0 ? 1 << data.consumeInt(0, 3) : 4;
                }
                if (data.consumeBoolean()) {
                    t.read(off, width);
                } else {
                    int value = switch (data.consumeInt(0, 5)) {
                        case 0 -> data.consumeInt();
                        case 1 -> 0;
                        case 2 -> 1;
                        case 3 -> 1 << data.consumeInt(0, 31);
                        case 4 -> 0x1000 * data.consumeInt(0, 255); // a guest address
                        default -> data.consumeInt(0, 15);
                    };
                    t.write(off, width, value);
                }
                assertEquals(MAGIC, t.read(MAGIC_VALUE, 4));
                assertEquals(2, t.read(VERSION_REG, 4));
                assertEquals(0x3f, t.read(DEVICE_ID, 4));
                assertEquals(0, t.read(INTERRUPT_STATUS, 4) & ~(INT_VRING | INT_CONFIG), "undefined interrupt bits");
            }
            initAndEcho(t);
        }
    }

    /** The driver's way in: reset, features, queue 0, DRIVER_OK, one echoed request. */
    private static void initAndEcho(MmioTransport t) throws Exception {
        MEMORY.slice(0, 0x10000).fill((byte) 0);
        MmioDriver d = MmioDriver.probe(t, MEMORY, 0x10000, 0x40000, null);
        d.negotiate(VirtioFeatures.RING_FEATURES);
        MmioDriver.Queue q = d.setupQueue(0, 16);
        d.driverOk();
        assertEquals(0, d.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        long buf = d.allocate(64, 64);
        MEMORY.writeU32(buf, 0x12345678);
        org.jvirtio.ring.QueueDriver ring = q.ring();
        assertTrue(ring.add(new long[] {buf, buf + 32}, new int[] {4, 4}, 2, 1, 1) >= 0);
        q.publish();
        long deadline = System.nanoTime() + 5_000_000_000L;
        int[] len = {-1};
        while (ring.pollUsed((h, tok, l) -> len[0] = l) == 0) {
            assertTrue(System.nanoTime() < deadline, "no answer after the fuzzed accesses");
            Thread.onSpinWait();
        }
        assertEquals(4, len[0]);
        assertEquals(~0x12345678 & 0xffffffffL, MEMORY.readU32(buf + 32));
        d.reset();
    }
}
