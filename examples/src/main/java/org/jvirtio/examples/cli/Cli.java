package org.jvirtio.examples.cli;

import picocli.CommandLine;

/**
 * jvirtio's command-line convention for the tools in this module: a bad flag is one line on
 * stderr ({@code NAME: what is wrong (see --help)}) and exit code 2; with {@link #oneLineFailures},
 * a failure while running is one line too and exit code 1, not a stack trace.
 */
public final class Cli {
    private Cli() {
    }

    /** The command line for {@code command}, named {@code name} in its messages. */
    public static CommandLine of(String name, Object command) {
        CommandLine cmd = new CommandLine(command);
        cmd.setParameterExceptionHandler((ex, args) -> {
            cmd.getErr().println(name + ": " + ex.getMessage() + " (see --help)");
            cmd.getErr().flush();
            return 2;
        });
        return cmd;
    }

    /** As {@link #of}, and an exception while running is one line on stderr and exit code 1. */
    public static CommandLine oneLineFailures(String name, Object command) {
        CommandLine cmd = of(name, command);
        cmd.setExecutionExceptionHandler((ex, c, parsed) -> {
            c.getErr().println(name + ": " + ex.getMessage());
            c.getErr().flush();
            return 1;
        });
        return cmd;
    }
}
