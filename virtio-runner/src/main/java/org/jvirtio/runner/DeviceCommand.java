package org.jvirtio.runner;

import java.io.IOException;

import com.google.inject.Module;
import org.jvirtio.api.VirtioDevice;

/**
 * A device the runner can serve: {@code bin/vhost-user NAME --socket PATH [device flags]}.
 *
 * <p>Implementations are found with {@link java.util.ServiceLoader}: list the class in
 * {@code META-INF/services/org.jvirtio.runner.DeviceCommand} of your jar (and, on the module path,
 * {@code provides org.jvirtio.runner.DeviceCommand with ...}) and put the jar on the runner's
 * class path ({@code JVIRTIO_DEVICE_PATH}, see bin/vhost-user). The class needs a public
 * no-argument constructor; the runner makes one instance per start. It names the subcommand
 * ({@link #name}), declares its flags in {@link #flags} and composes the device in
 * {@link #module}. The runner adds the common flags ({@code --socket}, {@code --iothreads},
 * {@code --poll-us}, ...), handles signals, prints the QEMU fragment, and serves the device until
 * SIGTERM or SIGINT.
 */
public interface DeviceCommand {
    /** The subcommand: {@code bin/vhost-user NAME}. Lower case letters, digits and dashes. */
    String name();

    /** What the device is, for {@code --help}: a line, or several separated by {@code \n}; the first is the summary. */
    String description();

    /**
     * Declares the device's flags, each with the code that takes its value:
     * {@code flags.integer("--face", "N", "The face every byte shows, 1 to 6.", 4, v -> face = v)}.
     * Called once, before the command line is parsed; defaults are applied then.
     */
    default void flags(Flags flags) {
    }

    /**
     * Called once the flags are parsed: checks them, opens what the device needs, and returns the
     * Guice module that binds {@link VirtioDevice}. A problem is an {@link IllegalArgumentException}
     * or {@link IOException} with a one-line message, before anything listens.
     */
    Module module() throws IOException;

    /** What is served, for the runner's first line ("a RAM disk of 1 GiB", "getrandom(2)"). */
    default String describe() {
        return "";
    }

    /** Device options after {@code chardev=...} in the printed QEMU {@code -device} fragment (",num-queues=2"). */
    default String qemuDeviceOptions(VirtioDevice device) {
        return "";
    }

    /** One line of counters for {@code --stats}, or null for the engine's per-queue requests and in-flight counts. */
    default String stats(VirtioDevice device) {
        return null;
    }

    /** SIGHUP: re-read what may have changed (a resized image); returns a line to print, or null. */
    default String reload(VirtioDevice device) throws IOException {
        return null;
    }

    /** After the backend stopped: releases what {@link #module()} opened. */
    default void close() throws IOException {
    }
}
