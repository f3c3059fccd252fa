package org.jvirtio.net;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

import org.jvirtio.api.CompletionMailbox;
import org.jvirtio.api.DescriptorChain;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueCompletions;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.QueueIo;
import org.jvirtio.api.QueueStats;

/**
 * A port's transmit queue: each chain is one frame (a virtio header, then the frame), checked
 * once, learned from and forwarded by the switch on this thread. The chain stays in flight while
 * destinations copy from it, and goes back to the driver (through a {@link CompletionMailbox},
 * since the last destination may be on any thread) when the last one is done; a frame nobody
 * takes goes back at once.
 *
 * <p>What a guest may not send is dropped and counted, never thrown, never forwarded: a chain
 * shorter than the header and an Ethernet header, a frame longer than the MTU allows (or 64 KiB
 * with GSO), GSO or a partial checksum the port did not negotiate, a GSO type with size 0, a
 * checksum position or header length past the frame, a multicast source address.
 */
final class TxQueue implements QueueHandler, FrameOwner {
    private final VirtioNetDevice device;
    private final SwitchPort port;
    private final int pair;
    /** This pair's sent frames and bytes (this queue's thread writes them alone). */
    private final Traffic sent;
    private final QueueStats stats;
    private final Frame[] frames;
    /** The virtio header, read once into here (the frame's first bytes go to its {@link Frame#head}). */
    private final MemorySegment vhdr = MemorySegment.ofArray(new byte[VirtioNet.HDR_SIZE]);
    private final FrameStage[] stages;
    private final long negotiated;
    private final int maxFrame;
    private CompletionMailbox mailbox;
    private QueueCompletions completions;

    TxQueue(VirtioNetDevice device, SwitchPort port, int pair, QueueBinding binding, long negotiated) {
        this.device = device;
        this.port = port;
        this.pair = pair;
        this.sent = port.txTraffic(pair);
        this.stats = binding.stats();
        this.negotiated = negotiated;
        int size = binding.queue().size();
        this.frames = new Frame[size];
        for (int i = 0; i < size; i++) {
            frames[i] = new Frame(this, i);
        }
        this.maxFrame = device.mtu() + VirtioNet.ETH_HLEN + 4; // one VLAN tag
        this.stages = device.stages();
    }

    @Override
    public void open(QueueCompletions completions) throws IOException {
        mailbox = new CompletionMailbox(frames.length, completions);
        this.completions = completions;
    }

    @Override
    public QueueIo io() {
        return mailbox;
    }

    @Override
    public int start(DescriptorChain chain, int slot) {
        long readable = chain.readableLength();
        if (readable < VirtioNet.HDR_SIZE + VirtioNet.ETH_HLEN || readable > VirtioNet.HDR_SIZE + VirtioNet.MAX_GSO_FRAME) {
            return drop(readable < VirtioNet.HDR_SIZE + VirtioNet.ETH_HLEN ? "shorter than a header" : "longer than 64 KiB");
        }
        int length = (int) (readable - VirtioNet.HDR_SIZE);
        Frame f = frames[slot];
        int n = Math.min(SwitchFrame.HEAD, length);
        NetHeader h = f.hdr;
        if (Integer.toUnsignedLong(chain.bufferLength(0)) >= VirtioNet.HDR_SIZE + n) {
            // The header and the frame's first bytes in the first buffer (as Linux and DPDK send
            // them): the header's fields read in place (each once), the head copied once.
            MemorySegment first = chain.bufferRegion(0);
            long at = chain.bufferOffset(0);
            h.read(first, at);
            MemorySegment.copy(first, at + VirtioNet.HDR_SIZE, f.headSegment, 0, n);
        } else {
            var reader = chain.reader();
            reader.read(vhdr);
            reader.read(f.headSegment.asSlice(0, n));
            h.read(vhdr, 0);
        }
        f.headLength = n;
        String bad = check(h, length);
        if (bad != null) {
            return drop(bad);
        }
        long dst = destination(f.head);
        long src = source(f.head);
        if ((src & 0x0100_0000_0000L) != 0) {
            return drop("multicast source address");
        }
        if (!port.adminUp()) {
            return drop("port down");
        }
        f.begin(chain, port, pair, length);
        f.dst = dst;
        f.src = src;
        FrameStage refused = refusedBy(stages, f);
        if (refused == null) {
            refused = refusedBy(port.owner().stages(), f);
        }
        if (refused != null) {
            f.releaseOwn();
            return drop("dropped by " + refused.getClass().getSimpleName());
        }
        if ((f.src & 0x0100_0000_0000L) != 0) {
            f.releaseOwn();
            return drop("multicast source address after a rewrite");
        }
        sent.add(1, length);
        stats.addBytes(length, false);
        port.owner().forward(f, NetSwitch.seconds(completions.batchNanos()));
        // The sender's own reference: if no destination holds the frame now, the chain is done.
        return f.releaseOwn() ? 0 : PENDING;
    }

    /** The first of {@code stages} that drops {@code f} (a stage that throws drops it), or null. */
    static FrameStage refusedBy(FrameStage[] stages, Frame f) {
        for (FrameStage stage : stages) {
            boolean pass;
            try {
                pass = stage.accept(f);
            } catch (RuntimeException e) {
                pass = false; // a stage that fails drops the frame, never the queue
            }
            if (!pass) {
                return stage;
            }
        }
        return null;
    }

    /** Why the header is not one this port may send, or null. */
    private String check(NetHeader h, int length) {
        return FrameChecks.check(h, length, negotiated, maxFrame);
    }

    private int drop(String why) {
        port.txDropped.incrementAndGet();
        stats.addError(org.jvirtio.api.QueueStats.ErrorKind.DROPPED);
        device.dropped(port, why);
        return 0;
    }

    /** The last destination is done with {@code f} (any thread): its chain goes back to the driver. */
    @Override
    public void sent(Frame f) {
        mailbox.complete(f.slot, 0);
    }

    private static final java.lang.invoke.VarHandle BE_LONG =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.BIG_ENDIAN);

    /** The destination address of the frame whose first bytes (12 at least) are {@code head}: one load. */
    static long destination(byte[] head) {
        return (long) BE_LONG.get(head, 0) >>> 16;
    }

    /** The source address in {@code head}: one load. */
    static long source(byte[] head) {
        return (long) BE_LONG.get(head, 4) & 0xffff_ffff_ffffL;
    }

    @Override
    public void close() {
        if (mailbox != null) {
            mailbox.close();
        }
    }
}
