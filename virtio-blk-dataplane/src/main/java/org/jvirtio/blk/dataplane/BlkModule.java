package org.jvirtio.blk.dataplane;

import com.google.inject.AbstractModule;
import com.google.inject.Provides;
import com.google.inject.Singleton;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.VirtioBlkDevice;

/**
 * Guice bindings of the virtio-blk disk: the block backend (opened and checked by the caller, so
 * a bad image fails with one line before anything is built), the device options, io_uring for
 * files, and the device itself. Whatever serves it picks the transport and the queue host; to put
 * in a backend of your own, bind it instead of passing one here.
 */
public final class BlkModule extends AbstractModule {
    private final BlockBackend backend;
    private final BlkOptions options;

    public BlkModule(BlockBackend backend, BlkOptions options) {
        this.backend = backend;
        this.options = options;
    }

    @Override
    protected void configure() {
        bind(BlockBackend.class).toInstance(backend);
        bind(BlkOptions.class).toInstance(options);
        bind(BlkIoFactory.class).to(UringIoFactory.class).in(Singleton.class);
    }

    @Provides
    @Singleton
    VirtioBlkDevice device(BlockBackend b, BlkOptions o, BlkIoFactory io) {
        return new VirtioBlkDevice(b, o, io);
    }
}
