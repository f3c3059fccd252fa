package org.jvirtio.examples.blk;

import com.google.inject.AbstractModule;
import com.google.inject.Provides;
import com.google.inject.Singleton;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.VirtioBlkDevice;

/**
 * Guice bindings of the vhost-user-blk backend: the block backend (opened and checked by the
 * caller, so a bad image fails with one line before anything is built), the device options, and
 * the device itself, bound both as itself and as the transport-facing {@link VirtioDevice}.
 * Another device type is another module like this one; transports and the ring do not change.
 */
public final class VhostUserBlkModule extends AbstractModule {
    private final BlockBackend backend;
    private final BlkOptions options;

    public VhostUserBlkModule(BlockBackend backend, BlkOptions options) {
        this.backend = backend;
        this.options = options;
    }

    @Override
    protected void configure() {
        bind(BlockBackend.class).toInstance(backend);
        bind(BlkOptions.class).toInstance(options);
        bind(VirtioDevice.class).to(VirtioBlkDevice.class);
    }

    @Provides
    @Singleton
    VirtioBlkDevice device(BlockBackend b, BlkOptions o) {
        return new VirtioBlkDevice(b, o);
    }
}
