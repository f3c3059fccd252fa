package org.example.dice;

import java.util.List;

import com.google.inject.Module;
import com.google.inject.name.Names;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/** {@code bin/vhost-user dice --socket PATH [--face N]}: found by the runner through ServiceLoader. */
public final class DiceCommand implements DeviceCommand<DiceDevice> {
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
    public Class<DiceDevice> deviceClass() {
        return DiceDevice.class;
    }

    @Override
    public void flags(Flags flags) {
        flags.integer("--face", "N", "The face every byte shows, 1 to 6.", 4, v -> face = v);
    }

    @Override
    public List<Module> modules() {
        if (face < 1 || face > 6) {
            throw new IllegalArgumentException("--face must be in [1, 6], got " + face);
        }
        return List.of(binder -> binder.bindConstant().annotatedWith(Names.named("face")).to(face));
    }

    @Override
    public String describe(DiceDevice device) {
        return "a die showing " + face;
    }
}
