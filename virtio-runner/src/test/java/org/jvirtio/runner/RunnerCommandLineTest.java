package org.jvirtio.runner;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.jvirtio.command.Flags;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/** The runner's command line, as bin/vhost-user runs it (the test device "stall" is found through this module's test META-INF/services). */
class RunnerCommandLineTest {
    @TempDir
    Path dir;

    private int run(ByteArrayOutputStream out, ByteArrayOutputStream err, String... args) {
        return VhostUserRunner.run(VhostUserRunner.devices(), args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @Test
    void theRunnerListsDevicesAndEachDevicesFlags() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertEquals(0, run(out, err, "--help"));
        assertTrue(out.toString().contains("Devices found: stall."), out.toString());
        assertTrue(out.toString().contains("  stall    Test device: holds every request forever."), out.toString());
        out.reset();
        assertEquals(0, run(out, err, "stall", "--socket", "x", "-h"));
        assertTrue(out.toString().startsWith("Usage: vhost-user stall --socket PATH [flags]\nTest device: holds every request forever.\n"), out.toString());
        assertTrue(out.toString().contains("  --drain-timeout SECONDS"), out.toString());
        assertEquals("", err.toString());
    }

    @Test
    void theRunnerRefusesABadCommandLineWithOneLineAndListensOnNothing() {
        Path sock = dir.resolve("x.sock");
        String[][] cases = {
            {},
            {"--socket", sock.toString()},
            {"nonesuch", "--socket", sock.toString()},
            {"stall"},
            {"stall", "--socket", sock.toString(), "--iothreads", "0"},
            {"stall", "--socket", sock.toString(), "--poll-us", "-1"},
            {"stall", "--socket", sock.toString(), "--poll-credit-ns", "-5"},
            {"stall", "--socket", sock.toString(), "--poll-credit-ns", "2000000"},
            {"stall", "--socket", sock.toString(), "--drain-timeout", "soon"},
            {"stall", "--socket", dir.resolve("missing/x.sock").toString()},
            {"stall", "--socket", sock.toString(), "--face", "4"},
        };
        for (String[] args : cases) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            assertEquals(2, run(out, err, args), String.join(" ", args));
            String e = err.toString();
            assertEquals(1, e.strip().lines().count(), e);
            assertTrue(e.endsWith(" (see --help)\n"), e);
            assertEquals("", out.toString());
            assertFalse(Files.exists(sock), "nothing listens after a refused start");
        }
    }

    @Test
    void startParsesTheDevicesAndTheCommonFlags() throws Exception {
        Path sock = dir.resolve("s.sock");
        try (VhostUserRunner.Running<?> r = VhostUserRunner.start(VhostUserRunner.devices(), "stall", "--socket", sock.toString(),
                "--thread-per-queue", "--stats=0")) {
            assertTrue(Files.exists(sock));
            assertEquals(0x3e, r.device().deviceId());
        }
        assertFalse(Files.exists(sock));
        assertThrows(Flags.FlagException.class, () -> VhostUserRunner.start(VhostUserRunner.devices(), "--socket", sock.toString()));
    }

    /** A device Guice cannot build (here: one needing a value nobody bound) is refused with one line, and nothing listens. */
    @Test
    void aCompositionMistakeIsOneLineAndNothingListens() {
        Path sock = dir.resolve("c.sock");
        org.jvirtio.command.DeviceCommand<NeedsAValue> broken = new org.jvirtio.command.DeviceCommand<>() {
            @Override
            public String name() {
                return "broken";
            }

            @Override
            public String description() {
                return "needs a value";
            }

            @Override
            public Class<NeedsAValue> deviceClass() {
                return NeedsAValue.class;
            }
        };
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> VhostUserRunner.start(broken, "--socket", sock.toString()));
        assertTrue(e.getMessage().startsWith("cannot compose broken: "), e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        assertFalse(Files.exists(sock));
    }

    /** A device whose constructor wants a value its command did not bind. */
    public static final class NeedsAValue extends org.jvirtio.api.AbstractVirtioDevice {
        @jakarta.inject.Inject
        public NeedsAValue(@jakarta.inject.Named("size") int size) {
            super(0x3d);
        }

        @Override
        public org.jvirtio.api.QueueHandler openQueue(org.jvirtio.api.QueueBinding queue) {
            return (chain, slot) -> 0;
        }
    }
}
