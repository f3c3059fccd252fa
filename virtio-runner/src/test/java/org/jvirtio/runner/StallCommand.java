package org.jvirtio.runner;

import com.google.inject.AbstractModule;
import com.google.inject.Module;
import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.VirtioDevice;

/**
 * A test device whose storage never answers: every chain is taken and held, and "stalled" is
 * printed on standard output for each, so that a test knows a request is in flight.
 */
public final class StallCommand implements DeviceCommand {
    @Override
    public String name() {
        return "stall";
    }

    @Override
    public String description() {
        return "Test device: holds every request forever.";
    }

    @Override
    public Module module() {
        return new AbstractModule() {
            @Override
            protected void configure() {
                bind(VirtioDevice.class).toInstance(new AbstractVirtioDevice(0x3e) {
                    @Override
                    public QueueHandler openQueue(QueueBinding binding) {
                        return (DescriptorChain chain, int slot) -> {
                            System.out.println("stalled " + chain.head());
                            System.out.flush();
                            return QueueHandler.PENDING;
                        };
                    }
                });
            }
        };
    }
}
