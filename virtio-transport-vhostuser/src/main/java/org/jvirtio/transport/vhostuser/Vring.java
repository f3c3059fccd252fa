package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.ring.InflightAttached;
import org.jvirtio.ring.PackedQueue;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.RingGeometry;
import org.jvirtio.ring.RingQueue;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringAddr;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One ring of a connection (vhost-user.rst "Starting and stopping rings"): what the front-end set
 * (size, addresses, base, kick, call, err, enabled), where the ring is in its life
 * ({@link State}), and the queue that serves it. Control thread only; {@link Vrings} holds them
 * all and applies what concerns every ring (new memory, a device reset).
 *
 * <p>One rule decides whether a ring runs ({@link #settle}): it is started, enabled, not held by
 * a device reset, and its size, addresses and memory place it validly. Whatever changes one of
 * these settles the ring again, so a ring that lost its memory for a moment (QEMU removes every
 * changed memory slot before it adds any) runs again as soon as the memory is back, at the
 * indices it stopped at.
 *
 * <p>A running queue is owned by its queue thread: to change anything it uses (memory, call fd,
 * ring addresses) the queue is stopped (drained), changed, and started again. Ring geometry is
 * the ring's to judge ({@link RingGeometry}), once per change: this class translates the
 * front-end's addresses ({@link #place}) and keeps the judgement.
 *
 * <p>The layout is the negotiated features' (VIRTIO_F_RING_PACKED): the queue object is a
 * {@link SplitQueue} or a {@link PackedQueue}, made again when the features change it; what
 * differs between the two (sizes, the base's encoding, the parts' sizes) is {@link VringLayout}'s.
 */
final class Vring {
    private static final Logger LOG = LoggerFactory.getLogger(Vring.class);

    /** Where a ring is in its life. */
    enum State {
        /** Not started: no SET_VRING_KICK since the last GET_VRING_BASE or reset. */
        STOPPED,
        /** Started: runs whenever it is enabled and placed validly in the current memory. */
        STARTED,
        /**
         * Started, but the device was reset (SET_STATUS 0) while it could run: it runs again only
         * when the front-end says so (DRIVER_OK, SET_VRING_ENABLE, SET_VRING_KICK), never because
         * its memory or addresses changed.
         */
        HELD,
        /** Served by the device. */
        RUNNING
    }

    private final int index;
    private final DeviceQueues queues;
    private final Vrings.Session session;
    private final RingQueue.ViolationListener onViolation;
    /** Replaced when a stop abandoned requests (the old one stays with them, see {@link #stop}) or the layout changed. */
    private RingQueue queue;
    private State state = State.STOPPED;
    private int num;
    private VringAddr addr;
    /**
     * Where the ring continues when next activated (SET_VRING_BASE, or where it stopped): split,
     * the next avail index; packed, the vhost-user encoding of both positions and wrap counters.
     */
    private int base;
    /** The used index to continue from when next activated, or -1 to read it from the ring. */
    private int used = -1;
    private EventFd kick;
    private EventFd call;
    private EventFd err;
    private boolean enabled;
    /** How the running queue interrupts the driver; its call fd can change under it. */
    private CallFd interrupt;

    Vring(int index, DeviceQueues queues, Vrings.Session session, RingQueue.ViolationListener onViolation) {
        this.index = index;
        this.queues = queues;
        this.session = session;
        this.onViolation = onViolation;
        this.queue = newQueue();
    }

    private RingQueue newQueue() {
        RingQueue q = RingQueue.create(index, queues.device().maxChainLength(), session.features());
        q.setViolationListener(onViolation);
        return q;
    }

    /** Whether the negotiated features make the ring packed. */
    private boolean packed() {
        return VirtioFeatures.has(session.features(), VirtioFeatures.RING_PACKED);
    }

    /** The queue object, of the negotiated layout (a stopped ring's is made again if the layout changed). */
    private RingQueue queue() {
        if (queue.packed() != packed() && !queue.isActive() && queue.inFlight() == 0) {
            queue = newQueue();
        }
        return queue;
    }

    /** Where the active queue stands, in the encoding of {@link #base}. */
    private int standing() {
        return VringLayout.standing(queue);
    }

    State state() {
        return state;
    }

    EventFd err() {
        return err;
    }

    // ---------------------------------------------------------------- what the front-end sets

    void setNum(String name, int n) throws VhostUserProtocolException {
        VringLayout.checkSize(name, index, n, queues.device().maxQueueSize(index), packed());
        if (state != State.STOPPED) {
            throw new VhostUserProtocolException(name + ": queue " + index + " size changed while the ring is started");
        }
        num = n;
    }

    void setBase(String name, int b) throws VhostUserProtocolException {
        if (state != State.STOPPED) {
            throw new VhostUserProtocolException(name + ": queue " + index + " base changed while the ring is started");
        }
        VringLayout.checkBase(name, index, b, num, packed());
        base = b;
    }

    void setAddr(String name, VringAddr a) throws VhostUserProtocolException {
        RingGeometry judged = null;
        if (session.memory().regionCount() > 0 && num > 0) {
            // Judged before anything changes: a refused SET_VRING_ADDR leaves the ring as it was.
            try {
                judged = place(a);
            } catch (RingConfigurationException e) {
                throw new VhostUserProtocolException(name + ": queue " + index + " " + e.getMessage());
            }
        }
        if (state == State.RUNNING && addr != null && addr.desc() == a.desc() && addr.avail() == a.avail() && addr.used() == a.used()) {
            // The same ring with its logging changed: QEMU's vhost_dev_set_log when a migration
            // starts (VHOST_VRING_F_LOG and log_guest_addr) or ends. The ring keeps running: the
            // queue thread takes the new log address with the next used element. (Stopping it
            // waited for every request in flight, with QEMU holding its big lock meanwhile.)
            addr = a;
            applyDirtyLog();
            return;
        }
        stop();
        addr = a;
        if (state != State.STOPPED) {
            rejudge(judged);
        }
        settle();
    }

    /** GET_VRING_BASE: stops the ring and returns where the front-end resumes. */
    int getBase() {
        stop();
        boolean active = queue.isActive();
        int b = active ? standing() : base;
        queue.deactivate();
        state = State.STOPPED;
        base = b;
        used = -1;
        LOG.debug("vhost-user: queue {} stopped at 0x{}", index, Integer.toHexString(b));
        // The ring is stopped: its kick and call are done with (as libvhost-user).
        closeKickAndCall();
        return b;
    }

    /** SET_VRING_KICK: the first one starts the ring. */
    void setKick(EventFd fd) {
        stop();
        close(kick);
        kick = fd;
        if (state == State.STOPPED) {
            state = State.STARTED;
            if ((session.features() & VhostUserProtocol.F_PROTOCOL_FEATURES) == 0) {
                enabled = true; // without protocol features a ring starts enabled
            }
            activate(null);
        } else if (state == State.HELD) {
            state = State.STARTED;
        }
        settle();
    }

    /** SET_VRING_CALL: swapped under a running queue where it can be, else with the queue stopped around it. */
    void setCall(EventFd fd) {
        if (state == State.RUNNING && interrupt.retiredCount() < CallFd.MAX_RETIRED) {
            // Swapped under the running queue, without a drain (which could take as long as the
            // storage likes): the queue thread closes the old fd itself.
            interrupt.swap(fd);
            call = fd;
        } else {
            boolean wasRunning = state == State.RUNNING;
            stop();
            close(call);
            call = fd;
            if (wasRunning) {
                settle();
            }
        }
        if (fd != null) {
            // As libvhost-user: a driver that reconnected may wait for an interrupt for used
            // buffers published before it gave us this fd.
            fd.signal();
        }
    }

    void setErr(EventFd fd) {
        close(err);
        err = fd;
    }

    void setEnable(boolean enable) {
        enabled = enable;
        if (enable) {
            if (state == State.HELD) {
                state = State.STARTED;
            }
            settle();
        } else {
            stop();
        }
    }

    // ---------------------------------------------------------------- what concerns every ring

    /** A device reset (SET_STATUS 0): stops the queue; a started ring is held until the front-end starts it again. */
    void hold() {
        stop();
        if (state == State.STARTED) {
            state = State.HELD;
        }
    }

    /** DRIVER_OK: a held ring is started again, and runs if it can. */
    void release() {
        if (state == State.HELD) {
            state = State.STARTED;
        }
        settle();
    }

    /** Whether the queue is served. */
    boolean running() {
        return state == State.RUNNING;
    }

    /** Judges a started ring again in new memory (it is stopped), keeping its indices. */
    void rejudge() {
        if (state != State.STOPPED) {
            rejudge(null);
        }
    }

    /**
     * Brings the ring where the rule says it belongs: running when it is started, enabled and
     * placed validly (activated here if it is not yet), else as it is.
     */
    void settle() {
        if (state != State.STARTED || !enabled) {
            return;
        }
        if (!queue.isActive()) {
            activate(null);
            if (!queue.isActive()) {
                return;
            }
        }
        try {
            session.beforeFirstStart(); // the device's activation, before its first queue
            interrupt = new CallFd(call);
            queues.start(new QueueBinding(index, queue, kick, interrupt), session.memory());
        } catch (RuntimeException e) {
            throw new QueueStartException(index, e); // the connection closes, with this reason
        }
        state = State.RUNNING;
    }

    /**
     * Stops a running queue (it stays started), waiting for what is in flight up to the drain
     * limit. When the stop gave up, the abandoned requests keep the old queue object (its chains
     * are theirs until they complete into nothing) and the ring goes on with a new one, at the
     * same indices: the front-end resumes from the avail index we were at, and the abandoned
     * heads never come back.
     */
    void stop() {
        if (state != State.RUNNING) {
            return;
        }
        state = State.STARTED;
        boolean drained = queues.stop(index);
        // The queue thread no longer signals: call fds swapped out under it are closed here.
        interrupt.closeRetired();
        interrupt = null;
        if (!drained) {
            RingQueue old = queue;
            int at = old.isActive() ? standing() : 0;
            queue = newQueue();
            if (old.isActive()) {
                VringLayout.activate(queue, old.geometry(), session.features(), at, old instanceof SplitQueue s ? s.nextUsed() : -1);
                applyDirtyLog();
            }
        }
    }

    /**
     * Sets the ring's logging to what the session says now (see {@link Vrings#applyDirtyLog}).
     * Safe while the ring runs: the queue thread reads it once per used element.
     */
    void applyDirtyLog() {
        if (!queue.isActive()) {
            return;
        }
        org.jvirtio.api.DirtyLog log = session.dirtyLog();
        if (log == null) {
            queue.setDirtyLog(null);
        } else if ((addr.flags() & VhostUserProtocol.VRING_F_LOG) != 0) {
            queue.setDirtyLog(log, addr.log());
        } else {
            queue.setDirtyLog(log);
        }
    }

    /** Stops the queue and forgets everything the front-end set (a device reset or a disconnect). */
    void reset() {
        stop();
        queue.deactivate();
        closeKickAndCall();
        close(err);
        err = null;
        num = 0;
        addr = null;
        base = 0;
        used = -1;
        enabled = false;
        state = State.STOPPED;
    }

    // ---------------------------------------------------------------- placement

    /** @throws RingConfigurationException why the ring cannot be placed at {@code a} in the current memory */
    private RingGeometry place(VringAddr a) throws RingConfigurationException {
        return VringLayout.place(session.memory(), index, num, a, packed());
    }

    /**
     * Judges a stopped, started ring again in the current memory, keeping its indices.
     *
     * @param judged its placement already judged in the current memory, or null
     */
    private void rejudge(RingGeometry judged) {
        if (queue.isActive()) {
            base = standing();
            used = queue instanceof SplitQueue s ? s.nextUsed() : -1;
            queue.deactivate();
        }
        activate(judged);
    }

    /**
     * Has the ring take its placement in the current memory, at {@link #base} and {@link #used};
     * a ring that cannot be placed yet (no size, addresses or memory, or refused) stays inactive
     * and waits for the next change.
     *
     * @param judged its placement already judged in the current memory, or null
     */
    private void activate(RingGeometry judged) {
        if (addr == null || num == 0 || session.memory().regionCount() == 0) {
            LOG.info("vhost-user: queue {} is started; it runs once its size, addresses and memory are set", index);
            return;
        }
        try {
            RingGeometry g = judged != null ? judged : place(addr);
            RingQueue q = queue();
            VringLayout.activate(q, g, session.features(), base, used);
            used = -1;
            LOG.debug("vhost-user: queue {} active: {}", index, q);
            applyDirtyLog();
            java.lang.foreign.MemorySegment region = session.inflight(index, num, q.packed());
            if (region != null) {
                InflightAttached at = q.attachInflight(region, session.inflightEntries());
                if (at.inconsistency() != null) {
                    LOG.warn("vhost-user: queue {}: the inflight region is inconsistent ({}); started afresh, nothing resubmitted",
                            index, at.inconsistency());
                } else if (at.resubmitted() > 0) {
                    queues.stats(index).addResubmitted(at.resubmitted());
                    LOG.info("vhost-user: queue {}: resubmitting {} requests a previous backend left in flight", index, at.resubmitted());
                }
                if (at.note() != null) {
                    LOG.info("vhost-user: queue {}: {}", index, at.note());
                }
            }
        } catch (RingConfigurationException e) {
            LOG.warn("vhost-user: queue {} cannot run: {}", index, e.getMessage());
        }
    }

    private void closeKickAndCall() {
        close(kick);
        kick = null;
        close(call);
        call = null;
    }

    private static void close(EventFd fd) {
        if (fd != null) {
            fd.close();
        }
    }
}
