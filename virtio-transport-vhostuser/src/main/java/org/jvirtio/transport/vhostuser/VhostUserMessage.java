package org.jvirtio.transport.vhostuser;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One message as it came off the socket: header fields, payload bytes, and the file descriptors
 * that arrived with it (owned by the message until a handler takes them).
 */
public record VhostUserMessage(int request, int flags, byte[] payload, int[] fds) {

    public boolean needsReply() {
        return (flags & VhostUserProtocol.FLAG_NEED_REPLY) != 0;
    }

    public boolean isReply() {
        return (flags & VhostUserProtocol.FLAG_REPLY) != 0;
    }

    /** The payload as a little-endian buffer. */
    public ByteBuffer payloadBuffer() {
        return ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Name for log lines: the request name, or the unknown code. */
    public String name() {
        VhostUserRequest r = VhostUserRequest.of(request);
        return r != null ? r.name() : "unknown request " + Integer.toUnsignedString(request);
    }

    /** Header + payload as one byte array, ready to send. */
    public static byte[] encode(int request, int flags, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(VhostUserProtocol.HEADER_SIZE + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(request).putInt(flags).putInt(payload.length).put(payload);
        return b.array();
    }

    public static byte[] u64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    public static byte[] vringState(int index, int num) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(index).putInt(num).array();
    }
}
