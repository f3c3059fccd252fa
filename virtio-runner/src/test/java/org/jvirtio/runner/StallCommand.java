package org.jvirtio.runner;

import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.command.DeviceCommand;

/**
 * A test device whose storage never answers: every chain is taken and held, and "stalled" is
 * printed on standard output for each, so that a test knows a request is in flight.
 */
public final class StallCommand implements DeviceCommand<StallCommand.StallDevice> {
    /** Holds every chain it is given. */
    public static final class StallDevice extends AbstractVirtioDevice {
        public StallDevice() {
            super(0x3e);
        }

        @Override
        public QueueHandler openQueue(QueueBinding binding) {
            return (DescriptorChain chain, int slot) -> {
                System.out.println("stalled " + chain.head());
                System.out.flush();
                return QueueHandler.PENDING;
            };
        }
    }

    @Override
    public String name() {
        return "stall";
    }

    @Override
    public String description() {
        return "Test device: holds every request forever.";
    }

    @Override
    public Class<StallDevice> deviceClass() {
        return StallDevice.class;
    }
}
