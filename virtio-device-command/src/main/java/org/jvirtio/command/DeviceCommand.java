package org.jvirtio.command;

import java.io.IOException;
import java.util.List;

import com.google.inject.Module;
import org.jvirtio.api.VirtioDevice;

/**
 * A device something can serve by name: {@code bin/vhost-user NAME --socket PATH [device flags]}.
 *
 * <p>Implementations are found with {@link java.util.ServiceLoader}: list the class in
 * {@code META-INF/services/org.jvirtio.command.DeviceCommand} of your jar (and, on the module path,
 * {@code provides org.jvirtio.command.DeviceCommand with ...}) and put the jar on the runner's
 * class path ({@code JVIRTIO_DEVICE_PATH}, see bin/vhost-user). The class needs a public
 * no-argument constructor; the runner makes one instance per device it starts.
 *
 * <p>One composition style: the runner builds {@code D} with Guice, {@code
 * Guice.createInjector(modules()).getInstance(deviceClass())}. A device whose {@code @Inject}
 * constructor needs nothing needs no module; one that needs values from the flags binds them in
 * {@link #modules()}, a lambda per value if that is all there is:
 * <pre>{@code
 * public final class DiceCommand implements DeviceCommand<DiceDevice> {
 *     int face;
 *     public String name() { return "dice"; }
 *     public String description() { return "An entropy device that always rolls the same face."; }
 *     public Class<DiceDevice> deviceClass() { return DiceDevice.class; }
 *     public void flags(Flags flags) { flags.integer("--face", "N", "The face, 1 to 6.", 4, v -> face = v); }
 *     public List<Module> modules() {
 *         return List.of(b -> b.bindConstant().annotatedWith(Names.named("face")).to(face));
 *     }
 * }
 * }</pre>
 * The runner adds the common flags ({@code --socket}, {@code --iothreads}, {@code --poll-us}, ...),
 * handles signals, prints the QEMU fragment, and serves the device until SIGTERM or SIGINT; the
 * callbacks that concern the running device get it as a {@code D}, never as a
 * {@link VirtioDevice} to cast.
 *
 * @param <D> the device this command composes
 */
public interface DeviceCommand<D extends VirtioDevice> {
    /** The subcommand: {@code bin/vhost-user NAME}. Lower case letters, digits and dashes. */
    String name();

    /** What the device is, for {@code --help}: a line, or several separated by {@code \n}; the first is the summary. */
    String description();

    /** The device's class, which Guice builds: through its {@code @Inject} constructor, or as {@link #modules()} bind it. */
    Class<D> deviceClass();

    /**
     * Declares the device's flags, each with the code that takes its value:
     * {@code flags.integer("--face", "N", "The face every byte shows, 1 to 6.", 4, v -> face = v)}.
     * Called once, before the command line is parsed; defaults are applied then.
     */
    default void flags(Flags flags) {
    }

    /**
     * Called once the flags are parsed: checks them, opens what the device needs, and returns the
     * Guice modules that bind what {@link #deviceClass()} needs (none by default). A problem is an
     * {@link IllegalArgumentException} or {@link IOException} with a one-line message, before
     * anything listens.
     */
    default List<Module> modules() throws IOException {
        return List.of();
    }

    /** What is served, for the runner's first line ("a RAM disk of 1 GiB", "getrandom(2)"). */
    default String describe(D device) {
        return "";
    }

    /** Device options after {@code chardev=...} in the printed QEMU {@code -device} fragment (",num-queues=2"). */
    default String qemuDeviceOptions(D device) {
        return "";
    }

    /** Counters of the device's own for {@code --stats}, after every queue's (requests, bytes, errors), or null. */
    default String stats(D device) {
        return null;
    }

    /** SIGHUP: re-read what may have changed (a resized image); returns a line to print, or null. */
    default String reload(D device) throws IOException {
        return null;
    }

    /** After the device stopped (or failed to start): releases what {@link #modules()} opened. */
    default void close() throws IOException {
    }
}
