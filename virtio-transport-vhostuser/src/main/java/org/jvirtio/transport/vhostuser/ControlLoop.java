package org.jvirtio.transport.vhostuser;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import io.netty.channel.IoEventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The control thread of vhost-user backends: one Netty epoll event loop that accepts their
 * front-ends, reads their messages and applies them. A backend started without one has a loop of
 * its own; the backends of one process may share one (as qemu-storage-daemon's exports share its
 * main loop), which costs a thread per process instead of per device. Then a message that waits
 * (GET_VRING_BASE while a disk's storage drains, up to the drain limit) holds up the other
 * devices' messages meanwhile; their I/O is not on this thread and goes on.
 */
public final class ControlLoop implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ControlLoop.class);
    private static final AtomicInteger COUNT = new AtomicInteger();

    private final MultiThreadIoEventLoopGroup group;
    private final IoEventLoop loop;

    public ControlLoop() {
        int n = COUNT.getAndIncrement();
        this.group = new MultiThreadIoEventLoopGroup(1,
                (java.util.concurrent.ThreadFactory) r -> Thread.ofPlatform().name("jvirtio-control-" + n).daemon().unstarted(r),
                EpollIoHandler.newFactory());
        this.loop = (IoEventLoop) group.next();
    }

    IoEventLoop loop() {
        return loop;
    }

    /** Ends the thread (after every backend on it closed); bounded. */
    @Override
    public void close() {
        if (!group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS)) {
            LOG.warn("vhost-user: the control loop did not end within 3 s; left to the end of the process");
        }
    }
}
