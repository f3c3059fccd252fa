package org.jvirtio.net;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A learning Ethernet switch whose ports are virtio-net devices (and, in time, a host's tap):
 * frames a port sends go to the port their destination address was learned on, or to every
 * other port when the destination is unknown, broadcast or multicast. Learning by source address
 * with aging ({@link MacTable}); per-port counters ({@link SwitchPort}).
 *
 * <p>No thread of its own: a frame is forwarded on the sending port's transmit thread, which
 * hands it to each destination's receive queue ({@link RxQueue#offer}); the destination's own
 * thread copies it from the sender's guest memory into the receiver's, once, and the sender's
 * buffer goes back to its driver when every destination is done with it.
 *
 * <p>Switches are found by name ({@link #named}): every {@code net} part of one process that
 * names the same switch is a port of it.
 */
public final class NetSwitch {
    /** How long a learned address lasts without being seen again (Linux's bridge default). */
    public static final int DEFAULT_AGING_SECONDS = 300;
    private static final Map<String, NetSwitch> SWITCHES = new ConcurrentHashMap<>();
    private static final long EPOCH = System.nanoTime();

    private final String name;
    private final MacTable macs;
    /** The ports, indexed by id (0 unused); replaced whole when a port joins or leaves. */
    private volatile SwitchPort[] ports = new SwitchPort[1];
    private int nextId = 1;

    public NetSwitch(String name) {
        this(name, 4096, DEFAULT_AGING_SECONDS);
    }

    NetSwitch(String name, int tableSize, int agingSeconds) {
        this.name = name;
        this.macs = new MacTable(tableSize, agingSeconds);
    }

    /** The switch of this process called {@code name}, made on first use. */
    public static NetSwitch named(String name) {
        return SWITCHES.computeIfAbsent(name, NetSwitch::new);
    }

    public String name() {
        return name;
    }

    /** Seconds since this process's switches started (the table's clock). */
    static int now() {
        return seconds(System.nanoTime());
    }

    /** The table's clock at {@code nanos} (a {@code System.nanoTime()} reading). */
    static int seconds(long nanos) {
        return (int) ((nanos - EPOCH) / 1_000_000_000L);
    }

    /** Stages every frame of every port goes through (after the port's own); replaced whole when one is added. */
    private volatile FrameStage[] stages = new FrameStage[0];

    /** Adds a stage for every port's frames; a stage already there (the same instance) is not added again. */
    public synchronized void addStage(FrameStage stage) {
        for (FrameStage s : stages) {
            if (s == stage) {
                return;
            }
        }
        FrameStage[] next = java.util.Arrays.copyOf(stages, stages.length + 1);
        next[stages.length] = stage;
        stages = next;
    }

    /** The switch-wide stages now. */
    FrameStage[] stages() {
        return stages;
    }

    /** The switch's tap uplinks by device name, with how many commands asked for each. */
    private final Map<String, TapPort> taps = new java.util.HashMap<>();
    private final Map<String, Integer> tapUsers = new java.util.HashMap<>();

    /**
     * The uplink to host tap {@code name}, opened (or created) on first use: one more port of this
     * switch. Each call is matched by a {@link #releaseUplink}.
     */
    public synchronized SwitchPort uplink(String name) throws java.io.IOException {
        TapPort t = taps.get(name);
        if (t == null) {
            Tap tap = Tap.open(name);
            try {
                t = new TapPort(join("tap " + name), tap);
            } catch (java.io.IOException | RuntimeException e) {
                tap.close();
                throw e;
            }
            taps.put(name, t);
        }
        tapUsers.merge(name, 1, Integer::sum);
        return t.port();
    }

    /** A user of uplink {@code name} is done; the last closes the tap. */
    public synchronized void releaseUplink(String name) {
        Integer n = tapUsers.get(name);
        if (n == null) {
            return;
        }
        if (n > 1) {
            tapUsers.put(name, n - 1);
            return;
        }
        tapUsers.remove(name);
        TapPort t = taps.remove(name);
        if (t != null) {
            t.close();
        }
    }

    /** Adds a port (for a {@link VirtioNetDevice} of one's own, or a {@link NetModule}); its id is fixed for its life. */
    public synchronized SwitchPort join(String portName) {
        SwitchPort[] cur = ports;
        int id = nextId;
        while (id < cur.length && cur[id] != null) {
            id++;
        }
        if (id > 0xffff) {
            throw new IllegalStateException("switch " + name + " has 65535 ports");
        }
        SwitchPort p = new SwitchPort(this, id, portName);
        SwitchPort[] next = Arrays.copyOf(cur, Math.max(cur.length, id + 1));
        next[id] = p;
        ports = next;
        nextId = id + 1;
        return p;
    }

    /** Removes a port: no frame is forwarded to it from now on, and what it taught the table is forgotten. */
    synchronized void leave(SwitchPort p) {
        SwitchPort[] next = ports.clone();
        if (p.id() < next.length && next[p.id()] == p) {
            next[p.id()] = null;
        }
        ports = next;
        macs.forget(p.id());
        if (p.id() < nextId) {
            nextId = p.id();
        }
    }

    /** The ports now (a snapshot; index = id, nulls for ids not in use). */
    SwitchPort[] ports() {
        return ports;
    }

    /** Learns the frame's source, then hands it to its destination port(s); returns how many took it. */
    int forward(Frame f) {
        return forward(f, now());
    }

    /** As {@link #forward(Frame)}, at {@code now} on the table's clock (a queue's batch time: no clock read per frame). */
    int forward(Frame f, int now) {
        SwitchPort from = f.from;
        if ((f.src & 0x0100_0000_0000L) == 0) {
            macs.learn(f.src, from.id(), now); // a multicast source is never learned (checked by the port as well)
        }
        SwitchPort[] ps = ports;
        if ((f.dst & 0x0100_0000_0000L) == 0) {
            int to = macs.lookup(f.dst, now);
            if (to != 0) {
                if (to == from.id()) {
                    from.countFiltered(); // the destination sits behind the sender's own port
                    return 0;
                }
                SwitchPort p = to < ps.length ? ps[to] : null;
                if (p != null) {
                    return p.deliver(f) ? 1 : 0;
                }
            }
        }
        int n = 0;
        for (int i = 1; i < ps.length; i++) {
            SwitchPort p = ps[i];
            if (p != null && p != from && p.deliver(f)) {
                n++;
            }
        }
        return n;
    }

    /**
     * Sends a frame the device itself made (an Ethernet frame, no virtio header: a RARP
     * announcing a migrated guest) from port {@code from} as if the port had sent it: learned,
     * forwarded, flooded, through the port's stages and the switch's as a guest's frame goes
     * (anti-spoofing and the like apply to it too). Rare, so it allocates. Returns the stage that
     * dropped it, or null when it was forwarded.
     */
    FrameStage inject(SwitchPort from, byte[] frame, FrameStage[] portStages) throws java.io.IOException {
        int n = VirtioNet.HDR_SIZE + frame.length;
        org.jvirtio.api.MemoryMapping m = org.jvirtio.api.MemoryMapping.memfd("jvirtio-announce", 4096);
        org.jvirtio.api.GuestMemory mem = org.jvirtio.api.GuestMemory.of(org.jvirtio.api.GuestRegion.of(0, m));
        m.release();
        java.lang.foreign.MemorySegment.copy(frame, 0, m.segment(), java.lang.foreign.ValueLayout.JAVA_BYTE, VirtioNet.HDR_SIZE, frame.length);
        TapPort.PoolChain chain = new TapPort.PoolChain();
        chain.set(mem, 0, n);
        Frame f = new Frame(done -> mem.release(), 0);
        f.hdr.read(m.segment(), 0);
        int h = Math.min(SwitchFrame.HEAD, frame.length);
        System.arraycopy(frame, 0, f.head, 0, h);
        f.headLength = h;
        f.begin(chain, from, 0, frame.length);
        f.dst = TxQueue.destination(f.head);
        f.src = TxQueue.source(f.head);
        FrameStage refused = TxQueue.refusedBy(portStages, f);
        if (refused == null) {
            refused = TxQueue.refusedBy(stages, f);
        }
        if (refused == null) {
            from.txFrames.incrementAndGet();
            from.txBytes.addAndGet(frame.length);
            forward(f);
        }
        if (f.releaseOwn()) {
            mem.release();
        }
        return refused;
    }

    /** The port {@code mac} was last seen on (frames to it go there alone), or null (for tests and statistics). */
    public SwitchPort portOf(long mac) {
        int id = macs.lookup(mac, now());
        SwitchPort[] ps = ports;
        return id > 0 && id < ps.length ? ps[id] : null;
    }

    /** Addresses learned and not aged. */
    public int learned() {
        return macs.size(now());
    }

    @Override
    public String toString() {
        return "switch " + name;
    }
}
