package org.jvirtio.transport.vhostuser;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;

/**
 * Decodes and checks message payloads in one place, so the handler acts only on well-formed,
 * typed values. Every check failure is a {@link VhostUserProtocolException} naming the message
 * and the rule broken. Encoders for the front-end side live here too.
 */
public final class VhostUserCodec {
    private VhostUserCodec() {
    }

    /** A memory region as the front-end describes it. */
    public record MemRegion(long guestAddress, long size, long userAddress, long mmapOffset) {
    }

    public record VringState(int index, int num) {
    }

    public record VringAddr(int index, int flags, long desc, long used, long avail, long log) {
    }

    /** SET_VRING_KICK / CALL / ERR: the queue and whether an fd came (NOFD: none). */
    public record VringFd(int index, boolean noFd) {
    }

    public record Config(int offset, int size, int flags, byte[] data) {
    }

    private static VhostUserProtocolException bad(VhostUserMessage m, String why) {
        return new VhostUserProtocolException(m.name() + ": " + why);
    }

    private static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Checks the header flags: version 1, no REPLY bit on a request. */
    public static void checkHeader(VhostUserMessage m) throws VhostUserProtocolException {
        if ((m.flags() & VERSION_MASK) != VERSION) {
            throw bad(m, "protocol version " + (m.flags() & VERSION_MASK) + " in flags 0x" + Integer.toHexString(m.flags()) + ", expected 1");
        }
        if (m.isReply()) {
            throw bad(m, "a request with the REPLY flag set");
        }
    }

    private static void exactSize(VhostUserMessage m, int size) throws VhostUserProtocolException {
        if (m.payload().length != size) {
            throw bad(m, "payload of " + m.payload().length + " bytes, expected " + size);
        }
    }

    private static void fdCount(VhostUserMessage m, int min, int max) throws VhostUserProtocolException {
        int n = m.fds().length;
        if (n < min || n > max) {
            throw bad(m, "carried " + n + " file descriptors, expected " + (min == max ? String.valueOf(min) : min + " to " + max));
        }
    }

    /** A message whose payload must be empty and that carries no fd. */
    public static void decodeNone(VhostUserMessage m) throws VhostUserProtocolException {
        // QEMU sends GET_* with size 0; some front-ends send a zeroed u64. Accept both.
        if (m.payload().length != 0 && m.payload().length != 8) {
            throw bad(m, "payload of " + m.payload().length + " bytes, expected none");
        }
        fdCount(m, 0, 0);
    }

    public static long decodeU64(VhostUserMessage m) throws VhostUserProtocolException {
        exactSize(m, 8);
        fdCount(m, 0, 0);
        return le(m.payload()).getLong();
    }

    public static VringState decodeVringState(VhostUserMessage m) throws VhostUserProtocolException {
        exactSize(m, VRING_STATE_SIZE);
        fdCount(m, 0, 0);
        ByteBuffer b = le(m.payload());
        return new VringState(b.getInt(), b.getInt());
    }

    public static VringAddr decodeVringAddr(VhostUserMessage m) throws VhostUserProtocolException {
        exactSize(m, VRING_ADDR_SIZE);
        fdCount(m, 0, 0);
        ByteBuffer b = le(m.payload());
        return new VringAddr(b.getInt(), b.getInt(), b.getLong(), b.getLong(), b.getLong(), b.getLong());
    }

    public static VringFd decodeVringFd(VhostUserMessage m) throws VhostUserProtocolException {
        exactSize(m, 8);
        long v = le(m.payload()).getLong();
        if ((v & ~(VRING_INDEX_MASK | VRING_NOFD_MASK)) != 0) {
            throw bad(m, "unknown bits in 0x" + Long.toHexString(v));
        }
        boolean noFd = (v & VRING_NOFD_MASK) != 0;
        fdCount(m, noFd ? 0 : 1, noFd ? 0 : 1);
        return new VringFd((int) (v & VRING_INDEX_MASK), noFd);
    }

    public static List<MemRegion> decodeMemTable(VhostUserMessage m) throws VhostUserProtocolException {
        byte[] p = m.payload();
        if (p.length < 8) {
            throw bad(m, "payload of " + p.length + " bytes, shorter than the 8-byte table header");
        }
        ByteBuffer b = le(p);
        int n = b.getInt();
        b.getInt();
        if (n < 1 || n > MAX_TABLE_REGIONS) {
            throw bad(m, n + " regions, expected 1 to " + MAX_TABLE_REGIONS);
        }
        // QEMU sends the full 8-region array whatever n is; shorter than n regions is truncated.
        if (p.length < 8 + n * MEM_REGION_SIZE || p.length > 8 + MAX_TABLE_REGIONS * MEM_REGION_SIZE) {
            throw bad(m, "payload of " + p.length + " bytes does not fit " + n + " regions");
        }
        fdCount(m, n, n);
        List<MemRegion> regions = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            regions.add(new MemRegion(b.getLong(), b.getLong(), b.getLong(), b.getLong()));
        }
        return regions;
    }

    public static MemRegion decodeMemRegion(VhostUserMessage m, boolean fdRequired) throws VhostUserProtocolException {
        exactSize(m, SINGLE_MEM_REGION_SIZE);
        fdCount(m, fdRequired ? 1 : 0, 1);
        ByteBuffer b = le(m.payload());
        b.getLong();
        return new MemRegion(b.getLong(), b.getLong(), b.getLong(), b.getLong());
    }

    public static Config decodeConfig(VhostUserMessage m, boolean withData) throws VhostUserProtocolException {
        byte[] p = m.payload();
        if (p.length < CONFIG_HEADER_SIZE) {
            throw bad(m, "payload of " + p.length + " bytes, shorter than the 12-byte config header");
        }
        fdCount(m, 0, 0);
        ByteBuffer b = le(p);
        int offset = b.getInt();
        int size = b.getInt();
        int flags = b.getInt();
        if (Integer.compareUnsigned(size, MAX_CONFIG_SIZE) > 0 || Integer.compareUnsigned(offset, MAX_CONFIG_SIZE) > 0
                || offset + size > MAX_CONFIG_SIZE) {
            throw bad(m, "config range offset " + Integer.toUnsignedString(offset) + " size " + Integer.toUnsignedString(size)
                    + " exceeds " + MAX_CONFIG_SIZE + " bytes");
        }
        // GET_CONFIG carries a buffer of `size` bytes to fill; SET_CONFIG the bytes to write.
        if (p.length != CONFIG_HEADER_SIZE + size && (withData || p.length != CONFIG_HEADER_SIZE)) {
            throw bad(m, "payload of " + p.length + " bytes for a config size of " + size);
        }
        byte[] data = new byte[size];
        if (p.length == CONFIG_HEADER_SIZE + size) {
            b.get(data);
        }
        return new Config(offset, size, flags, data);
    }

    // ---- encoders (front-end side and replies) ----

    public static byte[] encodeVringAddr(int index, int flags, long desc, long used, long avail, long log) {
        return ByteBuffer.allocate(VRING_ADDR_SIZE).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(index).putInt(flags).putLong(desc).putLong(used).putLong(avail).putLong(log).array();
    }

    public static byte[] encodeMemTable(List<MemRegion> regions) {
        ByteBuffer b = ByteBuffer.allocate(8 + regions.size() * MEM_REGION_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(regions.size()).putInt(0);
        for (MemRegion r : regions) {
            b.putLong(r.guestAddress()).putLong(r.size()).putLong(r.userAddress()).putLong(r.mmapOffset());
        }
        return b.array();
    }

    public static byte[] encodeMemRegion(MemRegion r) {
        return ByteBuffer.allocate(SINGLE_MEM_REGION_SIZE).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(0).putLong(r.guestAddress()).putLong(r.size()).putLong(r.userAddress()).putLong(r.mmapOffset()).array();
    }

    public static byte[] encodeConfig(int offset, int flags, byte[] data) {
        return ByteBuffer.allocate(CONFIG_HEADER_SIZE + data.length).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(offset).putInt(data.length).putInt(flags).put(data).array();
    }

    /** A GET_CONFIG request asking for {@code size} bytes. */
    public static byte[] encodeConfigRequest(int offset, int size) {
        return encodeConfig(offset, 0, new byte[size]);
    }
}
