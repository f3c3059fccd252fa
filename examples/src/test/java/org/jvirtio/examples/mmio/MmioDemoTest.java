package org.jvirtio.examples.mmio;

import java.io.PrintWriter;
import java.io.StringWriter;

import picocli.CommandLine;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** bin/mmio-demo's job: both devices initialized by the driver, blocks verified, random bytes read. */
class MmioDemoTest {
    @Test
    void initializesBothDevicesAndVerifiesTheBlocks() {
        CommandLine cmd = MmioDemo.commandLine();
        StringWriter out = new StringWriter();
        cmd.setOut(new PrintWriter(out));
        assertEquals(0, cmd.execute("--requests", "40", "--trace"));
        String s = out.toString();
        for (String line : new String[] {"blk: probe: magic \"virt\", version 2, device id 2", "FEATURES_OK kept",
            "blk: DRIVER_OK (status ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK)", "blk: write: 40 requests, all OK",
            "blk: read: 40 requests, all OK; every block verified", "rng: probe: magic \"virt\", version 2, device id 4",
            "rng: 64 random bytes", "done: both devices reset", "    write 0xd0000070/4 <- 0x0", "    read  0xd0000000/4 -> 0x74726976"}) {
            assertTrue(s.contains(line), "missing \"" + line + "\" in:\n" + s);
        }
    }

    @Test
    void aBadFlagExitsWith2() {
        CommandLine cmd = MmioDemo.commandLine();
        StringWriter err = new StringWriter();
        cmd.setErr(new PrintWriter(err));
        assertEquals(2, cmd.execute("--requests", "0"));
        assertEquals(2, cmd.execute("--requests", "many"));
        String[] lines = err.toString().strip().split("\n");
        assertEquals(2, lines.length, "one line per bad flag: " + err);
        assertTrue(lines[0].startsWith("mmio-demo: --requests must be in [1, 1024]"), lines[0]);
    }
}
