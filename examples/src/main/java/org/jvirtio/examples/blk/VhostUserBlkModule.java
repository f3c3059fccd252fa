package org.jvirtio.examples.blk;

import com.google.inject.AbstractModule;
import com.google.inject.Provides;
import com.google.inject.Singleton;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.blk.BlkIoFactory;
import org.jvirtio.blk.BlkOptions;
import org.jvirtio.blk.BlkQueueHost;
import org.jvirtio.blk.BlockBackend;
import org.jvirtio.blk.VirtioBlkDevice;
import org.jvirtio.blk.dataplane.IoThreads;
import org.jvirtio.blk.dataplane.UringIoFactory;

/**
 * Guice bindings of the vhost-user-blk backend: the block backend (opened and checked by the
 * caller, so a bad image fails with one line before anything is built), the device options, the
 * data plane (I/O threads on epoll event loops, io_uring for files), and the device itself, bound
 * both as itself and as the transport-facing {@link VirtioDevice}. Another device type is another
 * module like this one; transports and the ring do not change.
 */
public final class VhostUserBlkModule extends AbstractModule {
    private final BlockBackend backend;
    private final BlkOptions options;
    private final int ioThreads;
    private final long pollMicros;

    /**
     * @param ioThreads  I/O threads the queues are spread over
     * @param pollMicros adaptive busy-polling window (0: off)
     */
    public VhostUserBlkModule(BlockBackend backend, BlkOptions options, int ioThreads, long pollMicros) {
        this.backend = backend;
        this.options = options;
        this.ioThreads = ioThreads;
        this.pollMicros = pollMicros;
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
    BlkQueueHost ioThreads() {
        return new IoThreads(Math.min(ioThreads, options.queues()), pollMicros);
    }

    @Provides
    @Singleton
    VirtioBlkDevice device(BlockBackend b, BlkOptions o, BlkQueueHost host, BlkIoFactory io) {
        return new VirtioBlkDevice(b, o, host, io);
    }
}
