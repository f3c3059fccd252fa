package org.jvirtio.testkit.transports;

import org.jvirtio.api.GuestMemory;

/** What every rig holds: its kind, the guest memory, the features it negotiated. */
abstract class BaseRig implements TransportRig {
    private final Kind kind;
    final GuestMemory memory;
    long features;

    BaseRig(Kind kind, GuestMemory memory) {
        this.kind = kind;
        this.memory = memory;
    }

    @Override
    public final Kind kind() {
        return kind;
    }

    @Override
    public final long features() {
        return features;
    }

    @Override
    public final GuestMemory memory() {
        return memory;
    }
}
