package org.example.doorbell;

import java.io.IOException;

import com.google.inject.AbstractModule;
import com.google.inject.Module;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.runner.DeviceCommand;
import org.jvirtio.runner.Flags;

/** {@code bin/vhost-user doorbell --socket PATH [--message TEXT]}; {@code kill -HUP} rings the bell. */
public final class DoorbellCommand implements DeviceCommand {
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
    public void flags(Flags flags) {
        flags.string("--message", "TEXT", "What each ring delivers.", "ding", v -> message = v);
    }

    @Override
    public Module module() throws IOException {
        if (message.isEmpty()) {
            throw new IllegalArgumentException("--message must not be empty");
        }
        DoorbellDevice device = new DoorbellDevice(message);
        return new AbstractModule() {
            @Override
            protected void configure() {
                bind(VirtioDevice.class).toInstance(device);
            }
        };
    }

    @Override
    public String describe() {
        return "a doorbell saying \"" + message + "\"";
    }

    @Override
    public String reload(VirtioDevice device) {
        ((DoorbellDevice) device).ring();
        return "the bell rang";
    }
}
