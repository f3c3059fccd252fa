package org.jvirtio.examples.blk;

import java.io.IOException;

import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.blk.dataplane.BlkCommand;
import org.jvirtio.command.Flags;
import org.jvirtio.runner.VhostUserRunner;
import org.jvirtio.transport.vhostuser.VhostUserBackend;

/**
 * {@code bin/vhost-user-blk}: the same as {@code bin/vhost-user blk} (the runner's common flags plus
 * {@link BlkCommand}'s), as a command of its own; and {@link #start} for code that wants a blk
 * backend from a command line without a process of its own (the demo, the tests).
 */
public final class VhostUserBlkCommand {
    private VhostUserBlkCommand() {
    }

    /** A running backend: the transport, the device and its disk. */
    public record Running(VhostUserRunner.Running<VirtioBlkDevice> running, BlockBackend disk) implements AutoCloseable {
        public VhostUserBackend transport() {
            return running.transport();
        }

        public VirtioBlkDevice device() {
            return running.device();
        }

        /** The --stats line. */
        public String stats() {
            return running.stats();
        }

        @Override
        public void close() throws IOException {
            running.close();
        }
    }

    static long parseSize(String flag, String s) {
        return BlkCommand.parseSize(flag, s);
    }

    /**
     * Parses {@code args} as {@code bin/vhost-user-blk} does, opens the disk, composes the device
     * with Guice and starts serving.
     *
     * @throws Flags.FlagException or IllegalArgumentException for a bad flag, with a one-line message
     */
    public static Running start(String... args) throws IOException {
        BlkCommand blk = new BlkCommand();
        return new Running(VhostUserRunner.start(blk, args), blk.disk());
    }

    /** The command line: a bad flag or unusable disk is one line on stderr and exit code 2. */
    public static int run(String[] args, java.io.PrintStream out, java.io.PrintStream err) {
        return VhostUserRunner.runDevice("vhost-user-blk", "vhost-user-blk", new BlkCommand(), java.util.List.of(args), out, err);
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }
}
