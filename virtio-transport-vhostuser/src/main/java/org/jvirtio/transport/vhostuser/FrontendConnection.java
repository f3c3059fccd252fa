package org.jvirtio.transport.vhostuser;

import io.netty.channel.IoEvent;
import io.netty.channel.IoRegistration;
import io.netty.channel.epoll.EpollIoHandle;
import io.netty.channel.unix.FileDescriptor;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One front-end connection of a {@link VhostUserBackend}: reads its messages as they arrive on the
 * control loop ({@link MessageReader}), has its {@link BackendSession} apply them, and turns every
 * failure (a protocol error, a socket error, a fault in guest memory, a bug) into the connection's
 * end with a reason, never the loop's.
 */
final class FrontendConnection implements EpollIoHandle {
    private static final Logger LOG = LoggerFactory.getLogger(FrontendConnection.class);

    /** Told once when the connection ended, with why; after its session and fd are released. */
    interface Closed {
        void closed(FrontendConnection c, String reason);
    }

    private final int fd;
    private final FileDescriptor fdObj;
    private final MessageReader reader;
    private final BackendSession session;
    private final Closed onClosed;
    private IoRegistration registration;
    private boolean closed;

    FrontendConnection(int fd, BackendSession session, Closed onClosed) {
        this.fd = fd;
        this.fdObj = new FileDescriptor(fd);
        this.reader = new MessageReader(fd, true);
        this.session = session;
        this.onClosed = onClosed;
    }

    void registered(IoRegistration r) {
        this.registration = r;
    }

    BackendSession session() {
        return session;
    }

    boolean closed() {
        return closed;
    }

    @Override
    public FileDescriptor fd() {
        return fdObj;
    }

    @Override
    public void handle(IoRegistration registration, IoEvent event) {
        // Netty only logs what escapes from here: contain everything.
        VhostUserMessage m = null;
        try {
            while (!closed) {
                MessageReader.Status s = reader.read();
                if (s == MessageReader.Status.AGAIN) {
                    return;
                }
                if (s == MessageReader.Status.EOF) {
                    close("front-end disconnected");
                    return;
                }
                m = reader.message();
                session.handle(m);
                m = null;
            }
        } catch (VhostUserProtocolException e) {
            close("protocol error: " + e.getMessage());
        } catch (ErrnoException e) {
            close("socket error" + (m != null ? " on " + m.name() : "") + ": " + e.getMessage());
        } catch (QueueStartException e) {
            LOG.error("vhost-user: {}", e.getMessage(), e.getCause());
            close(e.getMessage());
        } catch (InternalError e) {
            // A fault touching guest memory on the control thread (SIGBUS: a memory file
            // shrank under its mapping). Netty would rethrow an Error and end this loop, and
            // with it every later connection: contained here, this connection only.
            close("guest memory faulted" + (m != null ? " on " + m.name() : "") + " (a memory file shrank under its mapping?): "
                    + e.getMessage());
        } catch (RuntimeException | Error e) {
            LOG.error("vhost-user: unexpected failure handling {}", m != null ? m.name() : "a message", e);
            close("internal error" + (m != null ? " on " + m.name() : "") + ": " + e);
        }
    }

    void close(String reason) {
        if (closed) {
            return;
        }
        closed = true;
        if (registration != null && registration.isValid()) {
            registration.cancel();
        }
        try {
            session.close();
        } catch (RuntimeException e) {
            LOG.error("vhost-user: device reset failed while closing the connection", e);
        }
        reader.close();
        Libc.closeQuietly(fd);
        onClosed.closed(this, reason);
    }

    @Override
    public void close() {
        close("backend shut down");
    }

    /**
     * The first half of shutting down, on the control loop: no more messages are read, and
     * the queues take nothing new. After it the loop no longer touches this connection, so
     * the second half ({@link #shutdown}) may run on any thread, and the backends sharing a
     * loop shut down side by side.
     */
    void prepareShutdown() {
        if (!closed) {
            if (registration != null) {
                registration.cancel();
            }
            session.prepareShutdown();
        }
    }

    /** The backend shuts down: queues get {@code drain} in all, then the connection closes. */
    void shutdown(java.time.Duration drain) {
        if (!closed) {
            try {
                session.shutdown(drain);
            } catch (RuntimeException e) {
                LOG.error("vhost-user: stopping the queues failed while shutting down", e);
            }
            close("backend shut down");
        }
    }
}
