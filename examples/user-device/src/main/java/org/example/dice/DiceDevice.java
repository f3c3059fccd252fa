package org.example.dice;

import jakarta.inject.Inject;
import jakarta.inject.Named;
import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.ChainWriter;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;

/**
 * An entropy device (virtio-rng, device id 4) whose every byte is the same face of a die:
 * "chosen by fair dice roll, guaranteed to be random". A complete jvirtio device: what it is
 * (id 4; no features, no config space and one queue are the defaults) and what it does with a
 * chain (fill its writable buffers, report the bytes written).
 */
public final class DiceDevice extends AbstractVirtioDevice {
    private final int face;

    @Inject
    public DiceDevice(@Named("face") int face) {
        super(4);
        this.face = face;
    }

    @Override
    public QueueHandler openQueue(QueueBinding queue) {
        // Called on the control thread when the driver starts the queue; the handler runs on the
        // queue's thread, which the framework owns.
        return (chain, slot) -> {
            ChainWriter w = chain.writer();
            int n = (int) Math.min(w.remaining(), 4096);
            for (int i = 0; i < n; i++) {
                w.writeU8(face);
            }
            return n;
        };
    }
}
