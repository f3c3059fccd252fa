package org.example.dice;

import com.google.inject.Module;
import org.jvirtio.runner.DeviceCommand;
import org.jvirtio.runner.Flags;

/** {@code bin/vhost-user dice --socket PATH [--face N]}: found by the runner through ServiceLoader. */
public final class DiceCommand implements DeviceCommand {
    int face;

    @Override
    public String name() {
        return "dice";
    }

    @Override
    public String description() {
        return "An entropy device that always rolls the same face (for tests).";
    }

    @Override
    public void flags(Flags flags) {
        flags.integer("--face", "N", "The face every byte shows, 1 to 6.", 4, v -> face = v);
    }

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
