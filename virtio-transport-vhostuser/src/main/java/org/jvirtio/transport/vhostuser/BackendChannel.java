package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;

/**
 * The backend request channel (SET_BACKEND_REQ_FD): the socket on which the backend sends
 * requests to the front-end, here CONFIG_CHANGE_MSG. The channel is the front-end's socket, so
 * nothing on it may stall the control loop: messages go out with MSG_DONTWAIT and a REPLY_ACK is
 * awaited whole within {@link #REPLY_TIMEOUT_MILLIS}. Control thread only.
 */
final class BackendChannel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BackendChannel.class);
    static final int REPLY_TIMEOUT_MILLIS = 5000;

    private final int replyTimeoutMillis;
    private int fd = -1;
    /**
     * Kept across requests: a reply that came too late (or half of one) stays here and is
     * dropped before the next request, never taken for that request's reply.
     */
    private MessageReader reader;

    BackendChannel() {
        this(REPLY_TIMEOUT_MILLIS);
    }

    BackendChannel(int replyTimeoutMillis) {
        this.replyTimeoutMillis = replyTimeoutMillis;
    }

    boolean isOpen() {
        return fd >= 0;
    }

    /** Takes the channel's fd, closing a previous one. */
    void set(int fd) {
        if (reader != null) {
            reader.close();
            reader = null;
        }
        Libc.closeQuietly(this.fd);
        this.fd = fd;
        if (fd >= 0) {
            reader = new MessageReader(fd, true);
        }
    }

    /** Sends CONFIG_CHANGE_MSG; with {@code ack}, waits for the front-end's reply. Failures are logged. */
    void configChanged(boolean ack) {
        try {
            dropLateReplies();
            UnixSocket.send(fd, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION | (ack ? FLAG_NEED_REPLY : 0), new byte[0]),
                    new int[0], true);
            if (ack) {
                awaitReply();
            }
        } catch (ErrnoException | VhostUserProtocolException e) {
            LOG.warn("vhost-user: CONFIG_CHANGE_MSG failed: {}", e.getMessage());
        }
    }

    /** Drops whatever the front-end sent since the last request: replies that came after their deadline. */
    private void dropLateReplies() throws ErrnoException, VhostUserProtocolException {
        MessageReader.Status s;
        while ((s = reader.read()) == MessageReader.Status.MESSAGE) {
            UnixSocket.closeAll(reader.message().fds());
            LOG.info("vhost-user: dropped a late reply on the backend request channel");
        }
        if (s == MessageReader.Status.EOF) {
            throw new VhostUserProtocolException("backend request channel closed");
        }
    }

    /** Waits for the whole reply (a front-end sending half of one does not stall the loop longer). */
    private void awaitReply() throws ErrnoException, VhostUserProtocolException {
        long deadline = System.nanoTime() + replyTimeoutMillis * 1_000_000L;
        while (true) {
            int left = (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000);
            if (left == 0 || !Libc.pollIn(fd, left)) {
                throw new VhostUserProtocolException("no reply to CONFIG_CHANGE_MSG within " + replyTimeoutMillis + " ms");
            }
            MessageReader.Status s = reader.read();
            if (s == MessageReader.Status.EOF) {
                throw new VhostUserProtocolException("backend request channel closed");
            }
            if (s == MessageReader.Status.MESSAGE) {
                UnixSocket.closeAll(reader.message().fds());
                return;
            }
        }
    }

    @Override
    public void close() {
        set(-1);
    }
}
