package org.example.dice;

import com.google.inject.Module;
import org.jvirtio.runner.DeviceCommand;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bin/vhost-user dice --socket PATH [--face N]}: found by the runner through ServiceLoader. */
@Command(name = "dice", description = "An entropy device that always rolls the same face (for tests).")
public final class DiceCommand implements DeviceCommand {
    @Option(names = "--face", defaultValue = "4", description = "The face every byte shows, 1 to 6 (default: ${DEFAULT-VALUE}).")
    int face;

    @Override
    public Module module() {
        if (face < 1 || face > 6) {
            throw new IllegalArgumentException("--face must be in [1, 6], got " + face);
        }
        return new DiceModule(face);
    }

    @Override
    public String describe() {
        return "a die showing " + face;
    }
}
