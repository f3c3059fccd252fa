package org.jvirtio.command;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The backends' command line: {@link Flags} and the runner's handling of it. */
class FlagsTest {
    /** A command's worth of flags writing into fields, as a device declares them. */
    private static final class Target {
        String name;
        int count;
        long bytes;
        Path file;
        boolean on;
        Flags flags = new Flags();

        Target() {
            flags.string("--name", "TEXT", "A name.", "anon", v -> name = v);
            flags.integer("--count", "N", "How many.", 3, v -> count = v);
            flags.longInteger("--bytes", "N", "How much.", 1L << 40, v -> bytes = v);
            flags.path("--file", "FILE", "Where.", v -> file = v).required();
            flags.toggle("--on", "Switch it on.", () -> on = true);
        }

        Target parse(String... args) {
            flags.parse(List.of(args));
            return this;
        }
    }

    @Test
    void defaultsThenValuesInBothFormsAndSwitches() {
        Target t = new Target().parse("--file", "/tmp/x");
        assertEquals("anon", t.name);
        assertEquals(3, t.count);
        assertEquals(1L << 40, t.bytes);
        assertEquals(Path.of("/tmp/x"), t.file);
        assertFalse(t.on);

        t = new Target().parse("--count=7", "--name", "--not-a-flag", "--file=/a b", "--on", "--bytes", "-5");
        assertEquals(7, t.count);
        assertEquals("--not-a-flag", t.name, "a value may look like a flag");
        assertEquals(Path.of("/a b"), t.file);
        assertTrue(t.on);
        assertEquals(-5, t.bytes, "range checks are the command's");
        assertTrue(t.flags.all().get(1).given());
        assertEquals("--count", t.flags.all().get(1).name());
    }

    @Test
    void everyBadCommandLineIsOneLineNamingTheFlag() {
        String[][] cases = {
            {"--count", "x", "--file", "f"}, {"--count: 'x' is not a whole number"},
            {"--count", "99999999999", "--file", "f"}, {"--count: '99999999999' is not a whole number"},
            {"--bytes=", "--file", "f"}, {"--bytes: '' is not a whole number"},
            {"--file", "f", "--count"}, {"--count needs a value (N)"},
            {"--file", "f", "--cont", "1"}, {"unknown flag --cont"},
            {"--file", "f", "--coun", "1"}, {"unknown flag --coun (did you mean --count?)"},
            {"--file", "f", "--file", "g"}, {"--file is given twice"},
            {"--file", "f", "--on=yes"}, {"--on takes no value"},
            {"--file", "f", "extra"}, {"unexpected argument 'extra'"},
            {"-f", "x"}, {"unexpected argument '-f'"},
            {}, {"missing --file FILE"},
            {"--file", "a\0b"}, {"--file: 'a\0b' is not a path"},
        };
        for (int i = 0; i < cases.length; i += 2) {
            String[] args = cases[i];
            String expected = cases[i + 1][0];
            Flags.FlagException e = assertThrows(Flags.FlagException.class, () -> new Target().parse(args), String.join(" ", args));
            assertTrue(e.getMessage().startsWith(expected), e.getMessage() + " for " + String.join(" ", args));
            assertEquals(1, e.getMessage().lines().count());
        }
    }

    @Test
    void aCommandsOwnCheckNamesTheFlag() {
        Flags f = new Flags();
        f.value("--level", "N", "A level.", null, text -> {
            if (!text.equals("high")) {
                throw new IllegalArgumentException("only high is allowed");
            }
            return text;
        }, v -> { });
        Flags.FlagException e = assertThrows(Flags.FlagException.class, () -> f.parse(List.of("--level", "low")));
        assertEquals("--level: only high is allowed", e.getMessage());
    }

    @Test
    void declaringTheSameFlagTwiceOrABadNameIsAProgrammingError() {
        Flags f = new Flags();
        f.toggle("--x", "X.", () -> { });
        assertThrows(IllegalArgumentException.class, () -> f.toggle("--x", "again", () -> { }));
        assertThrows(IllegalArgumentException.class, () -> f.toggle("-x", "short", () -> { }));
        assertThrows(IllegalArgumentException.class, () -> f.toggle("--help", "taken", () -> { }));
        assertThrows(IllegalArgumentException.class, () -> f.integer("--a=b", "N", "eq", 1, v -> { }));
    }

    @Test
    void helpIsAskedForInAFlagsPlaceOnly() {
        Target t = new Target();
        assertTrue(t.flags.asksForHelp(List.of("--help")));
        assertTrue(t.flags.asksForHelp(List.of("--count", "2", "-h")));
        assertFalse(t.flags.asksForHelp(List.of("--name", "--help")), "a name that reads --help");
        assertFalse(t.flags.asksForHelp(List.of("--file", "f")));
    }

    @Test
    void helpListsEachSectionAndWrapsLongDescriptions() {
        Flags f = new Flags();
        f.section("Flags of demo");
        f.integer("--depth", "N", "Requests in flight.", 16, v -> { });
        f.section("Common flags");
        f.path("--socket", "PATH", "Unix socket to listen on. " + "Words to wrap. ".repeat(12), v -> { }).required();
        f.toggle("--a-very-long-switch-name-indeed", "Long.", () -> { });
        String help = f.help();
        assertTrue(help.startsWith("Flags of demo:\n  --depth N                 Requests in flight. (default: 16)\n\nCommon flags:\n"), help);
        assertTrue(help.contains("  --socket PATH             Unix socket to listen on."), help);
        assertTrue(help.contains("Required."), help);
        assertTrue(help.contains("  --a-very-long-switch-name-indeed\n                            Long.\n"), help);
        for (String line : help.split("\n")) {
            assertTrue(line.length() <= Flags.WIDTH, line);
        }
    }

    /** Where one device's part of a command line ends: at a separator in a flag's place, never at a flag's value. */
    @Test
    void aPartEndsAtTheSeparatorInAFlagsPlaceNotAtAValue() {
        Flags f = new Flags();
        f.string("--serial", "TEXT", "A serial.", "x", v -> { });
        f.toggle("--read-only", "Refuse writes.", () -> { });
        List<String> args = List.of("--serial", "+", "--read-only", "+", "blk", "--serial=+", "+");
        assertEquals(3, f.end(args, 0, "+"), "the value of --serial is not a separator");
        assertEquals(6, f.end(args, 4, "+"), "--serial=+ is one flag");
        assertEquals(2, f.end(List.of("a", "b"), 0, "+"), "no separator: the end");
        assertEquals(1, f.end(List.of("a", "+"), 1, "+"));
    }
}
