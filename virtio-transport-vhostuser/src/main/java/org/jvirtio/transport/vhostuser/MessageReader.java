package org.jvirtio.transport.vhostuser;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import org.jvirtio.api.linux.ErrnoException;

/**
 * Assembles vhost-user messages from a socket, header then payload, reading never past the end
 * of the current message, so the file descriptors a {@code recvmsg} returns always belong to
 * the message being assembled (never mixed between messages). Works on a non-blocking socket
 * (partial messages are kept until more bytes come) and on a blocking one.
 */
final class MessageReader implements AutoCloseable {
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The most fds any request carries (SET_MEM_TABLE: one per region); more is refused at once. */
    static final int MAX_MESSAGE_FDS = VhostUserProtocol.MAX_TABLE_REGIONS;

    /** What one {@link #read} produced. */
    enum Status { MESSAGE, AGAIN, EOF }

    private final int fd;
    private final boolean nonBlocking;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment header = arena.allocate(VhostUserProtocol.HEADER_SIZE, 8);
    private final MemorySegment payload = arena.allocate(VhostUserProtocol.MAX_PAYLOAD, 8);
    private int headerRead;
    private int payloadSize = -1;
    private int payloadRead;
    private int[] fds = new int[0];
    private VhostUserMessage message;

    MessageReader(int fd, boolean nonBlocking) {
        this.fd = fd;
        this.nonBlocking = nonBlocking;
    }

    /**
     * Reads until a whole message is there, the socket has nothing more (non-blocking), or the
     * peer closed.
     *
     * @throws VhostUserProtocolException when the header announces more than any message may
     *                                    carry, or fds were truncated; the fds read are closed
     */
    Status read() throws ErrnoException, VhostUserProtocolException {
        while (true) {
            UnixSocket.Received r;
            if (headerRead < VhostUserProtocol.HEADER_SIZE) {
                r = UnixSocket.recv(fd, header, headerRead, VhostUserProtocol.HEADER_SIZE - headerRead, nonBlocking);
            } else {
                if (payloadRead == payloadSize) {
                    return complete();
                }
                r = UnixSocket.recv(fd, payload, payloadRead, payloadSize - payloadRead, nonBlocking);
            }
            if (r == UnixSocket.Received.AGAIN) {
                return Status.AGAIN;
            }
            addFds(r.fds());
            if (fds.length > MAX_MESSAGE_FDS) {
                // A message sent in pieces, each with fds: refused as soon as it carries more than
                // any request takes, instead of collecting them while it stays incomplete.
                throw fail("a message carrying " + fds.length + " file descriptors, more than any request takes ("
                        + MAX_MESSAGE_FDS + ")");
            }
            if (r.truncatedControl()) {
                throw fail("more file descriptors than any message carries (" + UnixSocket.MAX_FDS + "): control data truncated");
            }
            if (r.bytes() == 0) {
                if (headerRead == 0 && payloadSize < 0) {
                    UnixSocket.closeAll(fds);
                    fds = new int[0];
                    return Status.EOF;
                }
                throw fail("connection closed in the middle of a message");
            }
            if (headerRead < VhostUserProtocol.HEADER_SIZE) {
                headerRead += (int) r.bytes();
                if (headerRead == VhostUserProtocol.HEADER_SIZE) {
                    int size = header.get(LE_INT, 8);
                    if (Integer.compareUnsigned(size, VhostUserProtocol.MAX_PAYLOAD) > 0) {
                        throw fail(name() + ": header announces a payload of " + Integer.toUnsignedString(size)
                                + " bytes, more than any message carries (" + VhostUserProtocol.MAX_PAYLOAD + ")");
                    }
                    payloadSize = size;
                    payloadRead = 0;
                }
            } else {
                payloadRead += (int) r.bytes();
            }
            if (headerRead == VhostUserProtocol.HEADER_SIZE && payloadRead == payloadSize) {
                return complete();
            }
        }
    }

    private String name() {
        return new VhostUserMessage(header.get(LE_INT, 0), 0, new byte[0], new int[0]).name();
    }

    private Status complete() {
        byte[] p = new byte[payloadSize];
        MemorySegment.copy(payload, ValueLayout.JAVA_BYTE, 0, p, 0, payloadSize);
        message = new VhostUserMessage(header.get(LE_INT, 0), header.get(LE_INT, 4), p, fds);
        fds = new int[0];
        headerRead = 0;
        payloadSize = -1;
        payloadRead = 0;
        return Status.MESSAGE;
    }

    /** The message {@link #read} just completed; its fds now belong to the caller. */
    VhostUserMessage message() {
        VhostUserMessage m = message;
        message = null;
        return m;
    }

    private void addFds(int[] more) {
        if (more.length == 0) {
            return;
        }
        int[] all = new int[fds.length + more.length];
        System.arraycopy(fds, 0, all, 0, fds.length);
        System.arraycopy(more, 0, all, fds.length, more.length);
        fds = all;
    }

    private VhostUserProtocolException fail(String why) {
        UnixSocket.closeAll(fds);
        fds = new int[0];
        return new VhostUserProtocolException(why);
    }

    @Override
    public void close() {
        UnixSocket.closeAll(fds);
        fds = new int[0];
        arena.close();
    }
}
