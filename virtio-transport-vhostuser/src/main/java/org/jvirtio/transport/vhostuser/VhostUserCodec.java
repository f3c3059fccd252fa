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

    /** The inflight description of GET_INFLIGHT_FD / SET_INFLIGHT_FD and the reply. */
    public record Inflight(long mmapSize, long mmapOffset, int numQueues, int queueSize) {
    }

    public static Inflight decodeInflight(VhostUserMessage m) throws VhostUserProtocolException {
        int n = m.payload().length;
        if (n != INFLIGHT_SIZE && n != INFLIGHT_SIZE - 4) {
            throw bad(m, "payload of " + n + " bytes, expected " + INFLIGHT_SIZE);
        }
        ByteBuffer b = le(m.payload());
        return new Inflight(b.getLong(), b.getLong(), Short.toUnsignedInt(b.getShort()), Short.toUnsignedInt(b.getShort()));
    }

    public static byte[] encodeInflight(Inflight i) {
        return ByteBuffer.allocate(INFLIGHT_SIZE).order(ByteOrder.LITTLE_ENDIAN).putLong(i.mmapSize()).putLong(i.mmapOffset())
                .putShort((short) i.numQueues()).putShort((short) i.queueSize()).array();
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

    /** Whether the header is a request's, in version 1 (a failed request may then be answered). */
    static boolean isWellFramedRequest(VhostUserMessage m) {
        return (m.flags() & VERSION_MASK) == VERSION && !m.isReply();
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

    /**
     * Decodes and checks one front-end message: the header, the request code, the payload size
     * and the fd count each request takes, and the values that can be judged alone. Takes no fd:
     * the message's fds move into the value (or stay in the message for an unsupported request),
     * and the caller closes what is not taken.
     */
    static FrontendRequest decode(VhostUserMessage m) throws VhostUserProtocolException {
        checkHeader(m);
        VhostUserRequest req = VhostUserRequest.of(m.request());
        if (req == null) {
            throw new VhostUserProtocolException("unknown request code " + Integer.toUnsignedString(m.request()));
        }
        MessageFds fds = new MessageFds(m.fds());
        return switch (req) {
            case GET_FEATURES -> none(m, new FrontendRequest.GetFeatures());
            case SET_FEATURES -> new FrontendRequest.SetFeatures(decodeU64(m));
            case SET_OWNER -> none(m, new FrontendRequest.SetOwner());
            case RESET_OWNER, RESET_DEVICE -> none(m, new FrontendRequest.ResetDevice());
            case GET_PROTOCOL_FEATURES -> none(m, new FrontendRequest.GetProtocolFeatures());
            case SET_PROTOCOL_FEATURES -> new FrontendRequest.SetProtocolFeatures(decodeU64(m));
            case GET_QUEUE_NUM -> none(m, new FrontendRequest.GetQueueNum());
            case GET_MAX_MEM_SLOTS -> none(m, new FrontendRequest.GetMaxMemSlots());
            case SET_MEM_TABLE -> new FrontendRequest.SetMemTable(decodeMemTable(m), fds);
            case ADD_MEM_REG -> new FrontendRequest.AddMemReg(decodeMemRegion(m, true), fds);
            case REM_MEM_REG -> new FrontendRequest.RemMemReg(decodeMemRegion(m, false));
            case SET_VRING_NUM -> {
                VringState s = decodeVringState(m);
                yield new FrontendRequest.SetVringNum(s.index(), s.num());
            }
            case SET_VRING_ADDR -> {
                VringAddr a = decodeVringAddr(m);
                if ((a.flags() & ~VRING_F_LOG) != 0) {
                    throw bad(m, "queue " + a.index() + " unknown flags 0x" + Integer.toHexString(a.flags()));
                }
                yield new FrontendRequest.SetVringAddr(a);
            }
            case SET_VRING_BASE -> {
                // Split or packed encoding: the ring, which knows its layout, judges the value.
                VringState s = decodeVringState(m);
                yield new FrontendRequest.SetVringBase(s.index(), s.num());
            }
            case GET_VRING_BASE -> new FrontendRequest.GetVringBase(decodeVringState(m).index());
            case SET_VRING_KICK -> vringFd(m, FrontendRequest.VringFdKind.KICK, fds);
            case SET_VRING_CALL -> vringFd(m, FrontendRequest.VringFdKind.CALL, fds);
            case SET_VRING_ERR -> vringFd(m, FrontendRequest.VringFdKind.ERR, fds);
            case SET_VRING_ENABLE -> {
                VringState s = decodeVringState(m);
                if (s.num() != 0 && s.num() != 1) {
                    throw bad(m, "queue " + s.index() + " enable value " + Integer.toUnsignedString(s.num()) + ", expected 0 or 1");
                }
                yield new FrontendRequest.SetVringEnable(s.index(), s.num() == 1);
            }
            case SET_BACKEND_REQ_FD -> {
                if (m.payload().length != 0 && m.payload().length != 8) {
                    throw bad(m, "payload of " + m.payload().length + " bytes, expected none");
                }
                fdCount(m, 1, 1);
                yield new FrontendRequest.SetBackendReqFd(fds);
            }
            case GET_CONFIG -> new FrontendRequest.GetConfig(decodeConfig(m, false));
            case SET_CONFIG -> new FrontendRequest.SetConfig(decodeConfig(m, true));
            case SET_STATUS -> {
                long s = decodeU64(m);
                if (s < 0 || s > 0xff) {
                    throw bad(m, "status 0x" + Long.toHexString(s) + " does not fit 8 bits");
                }
                yield new FrontendRequest.SetStatus((int) s);
            }
            case GET_STATUS -> none(m, new FrontendRequest.GetStatus());
            case GET_INFLIGHT_FD -> {
                Inflight i = decodeInflight(m);
                fdCount(m, 0, 0);
                yield new FrontendRequest.GetInflightFd(i.numQueues(), i.queueSize());
            }
            case SET_INFLIGHT_FD -> {
                Inflight i = decodeInflight(m);
                fdCount(m, 1, 1);
                yield new FrontendRequest.SetInflightFd(i.mmapSize(), i.mmapOffset(), i.numQueues(), i.queueSize(), fds);
            }
            case SET_LOG_BASE -> {
                exactSize(m, LOG_SIZE);
                fdCount(m, 1, 1);
                ByteBuffer b = le(m.payload());
                yield new FrontendRequest.SetLogBase(b.getLong(), b.getLong(), fds);
            }
            case SET_LOG_FD -> {
                if (m.payload().length != 0 && m.payload().length != 8) {
                    throw bad(m, "payload of " + m.payload().length + " bytes, expected none");
                }
                fdCount(m, 0, 1);
                yield new FrontendRequest.SetLogFd(fds);
            }
            case SEND_RARP -> {
                exactSize(m, 8);
                fdCount(m, 0, 0);
                byte[] p = m.payload(); // the MAC address in its first six bytes, in network order
                long mac = 0;
                for (int i = 0; i < 6; i++) {
                    mac = (mac << 8) | (p[i] & 0xff);
                }
                yield new FrontendRequest.SendRarp(mac);
            }
            case NET_SET_MTU, IOTLB_MSG, SET_VRING_ENDIAN, CREATE_CRYPTO_SESSION,
                 CLOSE_CRYPTO_SESSION, POSTCOPY_ADVISE, POSTCOPY_LISTEN, POSTCOPY_END,
                 GPU_SET_SOCKET, VRING_KICK, GET_SHARED_OBJECT, SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE ->
                    new FrontendRequest.Unsupported(req);
        };
    }

    private static FrontendRequest none(VhostUserMessage m, FrontendRequest r) throws VhostUserProtocolException {
        decodeNone(m);
        return r;
    }

    private static FrontendRequest vringFd(VhostUserMessage m, FrontendRequest.VringFdKind kind, MessageFds fds)
            throws VhostUserProtocolException {
        VringFd f = decodeVringFd(m);
        return new FrontendRequest.SetVringFd(kind, f.index(), fds);
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
