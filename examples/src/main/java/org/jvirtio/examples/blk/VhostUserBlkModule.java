package org.jvirtio.examples.blk;

import com.google.inject.AbstractModule;
import com.google.inject.Provides;
import com.google.inject.Singleton;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.blk.dataplane.UringIoFactory;

/**
 * Guice bindings of the vhost-user-blk backend: the block backend (opened and checked by the
 * caller, so a bad image fails with one line before anything is built), the device options,
 * io_uring for files (virtio-blk-dataplane), and the device itself, bound both as itself and as
 * the {@link VirtioDevice} the runner serves. The runner picks the queue host (the epoll I/O
 * threads by default). Another device type is another module like this one; transports and the
 * ring do not change.
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
        bind(BlkIoFactory.class).to(UringIoFactory.class).in(Singleton.class);
        bind(VirtioDevice.class).to(VirtioBlkDevice.class);
    }

    @Provides
    @Singleton
    VirtioBlkDevice device(BlockBackend b, BlkOptions o, BlkIoFactory io) {
        return new VirtioBlkDevice(b, o, io);
    }
}
