package org.jvirtio.examples.blk;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.concurrent.Callable;

import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.runner.RunnerOptions;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.VhostUserBackend;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code bin/vhost-user-blk}: the same as {@code bin/vhost-user blk} (the runner's common flags plus
 * {@link BlkCommand}'s), as a command of its own.
 */
@Command(name = "vhost-user-blk", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"A vhost-user-blk backend in Java: QEMU connects to --socket and uses the disk as a virtio-blk device.",
            "Exactly one of --image, --ram, --null. Sizes take K, M, G suffixes (powers of 1024).",
            "SIGHUP re-reads the image size and announces a resize to the front-end; SIGTERM/SIGINT stop cleanly."})
public final class VhostUserBlkCommand implements Callable<Integer> {
    @Mixin
    RunnerOptions runner = new RunnerOptions();

    @Mixin
    BlkCommand blk = new BlkCommand();

    @Spec
    CommandSpec spec;

    /** A running backend: the transport, the device and its disk. */
    public record Running(VhostUserRunner.Running running, BlockBackend disk) implements AutoCloseable {
        public VhostUserBackend transport() {
            return running.transport();
        }

        public VirtioBlkDevice device() {
            return (VirtioBlkDevice) running.device();
        }

        @Override
        public void close() throws IOException {
            running.close();
        }
    }

    static long parseSize(String flag, String s) {
        return BlkCommand.parseSize(flag, s);
    }

    /** Opens the disk, composes the device with Guice and starts serving. */
    public Running start() throws IOException {
        return new Running(VhostUserRunner.start(blk, runner), blk.disk());
    }

    @Override
    public Integer call() throws Exception {
        return VhostUserRunner.serve("vhost-user-blk", spec, blk, runner);
    }

    void printStats(PrintWriter out, VirtioBlkDevice device) {
        out.println(blk.stats(device));
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
