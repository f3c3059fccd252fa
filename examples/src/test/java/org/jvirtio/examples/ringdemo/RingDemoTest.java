package org.jvirtio.examples.ringdemo;

import java.io.PrintWriter;
import java.io.StringWriter;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import static org.junit.jupiter.api.Assertions.*;

class RingDemoTest {
    private static int run(StringWriter err, String... args) {
        CommandLine cmd = RingDemo.commandLine();
        cmd.setErr(new PrintWriter(err));
        cmd.setOut(new PrintWriter(new StringWriter()));
        return cmd.execute(args);
    }

    @Test
    void badFlagsAreRefusedWithExitCode2() {
        StringWriter err = new StringWriter();
        assertEquals(2, run(err, "--queue-size", "3"));
        assertTrue(err.toString().contains("--queue-size must be a power of two"), err.toString());
        assertEquals(2, run(new StringWriter(), "--requests", "0"));
        assertEquals(2, run(new StringWriter(), "--bogus"));
        assertEquals(2, run(new StringWriter(), "--requests", "many"));
    }

    @Test
    void smallRunSucceeds() {
        assertEquals(0, run(new StringWriter(), "--requests", "10000", "--runs", "1"));
    }
}
