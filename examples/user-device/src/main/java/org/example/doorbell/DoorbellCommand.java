package org.example.doorbell;

import java.util.List;

import com.google.inject.Module;
import com.google.inject.name.Names;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/** {@code bin/vhost-user doorbell --socket PATH [--message TEXT]}; {@code kill -HUP} rings the bell. */
public final class DoorbellCommand implements DeviceCommand<DoorbellDevice> {
    String message;

    @Override
    public String name() {
        return "doorbell";
    }

    @Override
    public String description() {
        return "An entropy device that answers only when the bell rings (SIGHUP): each ring fills one buffer with the message.";
    }

    @Override
    public Class<DoorbellDevice> deviceClass() {
        return DoorbellDevice.class;
    }

    @Override
    public void flags(Flags flags) {
        flags.string("--message", "TEXT", "What each ring delivers.", "ding", v -> message = v);
    }

    @Override
    public List<Module> modules() {
        if (message.isEmpty()) {
            throw new IllegalArgumentException("--message must not be empty");
        }
        return List.of(binder -> binder.bindConstant().annotatedWith(Names.named("message")).to(message));
    }

    @Override
    public String describe(DoorbellDevice device) {
        return "a doorbell saying \"" + message + "\"";
    }

    @Override
    public String reload(DoorbellDevice device) {
        device.ring();
        return "the bell rang";
    }
}
