package org.jvirtio.transport.vhostuser;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.GuestMemoryException;
import org.jvirtio.api.Interrupt;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.ring.RingConfigurationException;
import org.jvirtio.ring.RingGeometry;
import org.jvirtio.ring.RingViolation;
import org.jvirtio.ring.SplitQueue;
import org.jvirtio.ring.SplitRingLayout;
import org.jvirtio.transport.vhostuser.FrontendRequest.VringFdKind;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringAddr;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The rings of one connection and their state machine (vhost-user.rst "Starting and stopping
 * rings"): what the front-end set (size, addresses, base, kick, call, err, enabled) and where
 * each ring is in its life ({@link State}). Control thread only.
 *
 * <p>One rule decides whether a ring runs ({@link #settle}): it is started, enabled, not held by
 * a device reset, and its size, addresses and memory place it validly. Whatever changes one of
 * these (a message, new memory) settles the ring again, so a ring that lost its memory for a
 * moment (QEMU removes every changed memory slot before it adds any) runs again as soon as the
 * memory is back, at the indices it stopped at.
 *
 * <p>A running queue is owned by its queue thread: to change anything it uses (memory, call fd,
 * ring addresses) the queue is stopped (drained), changed, and started again. Ring geometry is
 * the ring's to judge ({@link RingGeometry}), once per change: this class translates the
 * front-end's addresses ({@link #place}) and keeps the judgement.
 */
final class Vrings {
    private static final Logger LOG = LoggerFactory.getLogger(Vrings.class);

    /** What the rings need from the rest of the session. */
    interface Session {
        GuestMemory memory();

        /** The negotiated virtio features, VHOST_USER_F_PROTOCOL_FEATURES included. */
        long features();

        /** Called before the first queue of a driver session starts. */
        void beforeFirstStart();

        /** Queue {@code index}'s part of the inflight region for a ring of {@code size}, or null. */
        java.lang.foreign.MemorySegment inflight(int index, int size);

        /** Entries per queue of the inflight region (its queue size, at least the ring's). */
        int inflightEntries();

        /** The dirty log while VHOST_F_LOG_ALL is negotiated and a log is shared, else null. */
        org.jvirtio.api.DirtyLog dirtyLog();
    }

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

    /** Per-queue state as the front-end set it. */
    private static final class Vring {
        /** Replaced when a stop abandoned requests: the old one stays with them (see {@link #stopRunning}). */
        SplitQueue queue;
        State state = State.STOPPED;
        int num;
        VringAddr addr;
        /** The next avail index to read when the ring is next activated (SET_VRING_BASE, or where it stopped). */
        int base;
        /** The used index to continue from when next activated, or -1 to read it from the ring. */
        int used = -1;
        EventFd kick;
        EventFd call;
        EventFd err;
        boolean enabled;
        /** How the running queue interrupts the driver; its call fd can change under it. */
        CallFd interrupt;

        Vring(SplitQueue queue) {
            this.queue = queue;
        }
    }

    private final Vring[] vrings;
    private final DeviceQueues queues;
    private final Session session;
    private final SplitQueue.ViolationListener onViolation;

    Vrings(DeviceQueues queues, Session session, SplitQueue.ViolationListener onViolation) {
        this.queues = queues;
        this.session = session;
        this.onViolation = onViolation;
        this.vrings = new Vring[queues.device().queueCount()];
        for (int i = 0; i < vrings.length; i++) {
            vrings[i] = new Vring(newQueue(i));
        }
    }

    private SplitQueue newQueue(int index) {
        SplitQueue q = new SplitQueue(index, queues.device().maxChainLength());
        q.setViolationListener(onViolation);
        return q;
    }

    int count() {
        return vrings.length;
    }

    /** Where ring {@code index} is in its life (for tests). */
    State state(int index) {
        return vrings[index].state;
    }

    private Vring vring(String name, int index) throws VhostUserProtocolException {
        if (index < 0 || index >= vrings.length) {
            throw new VhostUserProtocolException(name + ": queue index " + Integer.toUnsignedString(index)
                    + " out of range (device has " + vrings.length + " queues)");
        }
        return vrings[index];
    }

    /** Whether any queue is being served. */
    boolean anyRunning() {
        for (Vring v : vrings) {
            if (v.state == State.RUNNING) {
                return true;
            }
        }
        return false;
    }

    /** The error eventfd of queue {@code index}, or null. */
    EventFd errFd(int index) {
        return index >= 0 && index < vrings.length ? vrings[index].err : null;
    }

    void setNum(String name, int index, int num) throws VhostUserProtocolException {
        Vring v = vring(name, index);
        int max = Math.min(queues.device().maxQueueSize(index), SplitRingLayout.MAX_SIZE);
        if (!SplitRingLayout.isValidSize(num) || num > max) {
            throw new VhostUserProtocolException(name + ": queue " + index + " size " + Integer.toUnsignedString(num)
                    + " is not a power of two in [1, " + max + "]");
        }
        if (v.state != State.STOPPED) {
            throw new VhostUserProtocolException(name + ": queue " + index + " size changed while the ring is started");
        }
        v.num = num;
    }

    void setBase(String name, int index, int base) throws VhostUserProtocolException {
        Vring v = vring(name, index);
        if (v.state != State.STOPPED) {
            throw new VhostUserProtocolException(name + ": queue " + index + " base changed while the ring is started");
        }
        v.base = base;
    }

    void setAddr(String name, VringAddr a) throws VhostUserProtocolException {
        Vring v = vring(name, a.index());
        RingGeometry judged = null;
        if (session.memory().regionCount() > 0 && v.num > 0) {
            // Judged before anything changes: a refused SET_VRING_ADDR leaves the ring as it was.
            try {
                judged = place(a.index(), v.num, a);
            } catch (RingConfigurationException e) {
                throw new VhostUserProtocolException(name + ": queue " + a.index() + " " + e.getMessage());
            }
        }
        if (v.state == State.RUNNING && v.addr != null && v.addr.desc() == a.desc() && v.addr.avail() == a.avail()
                && v.addr.used() == a.used()) {
            // The same ring with its logging changed: QEMU's vhost_dev_set_log when a migration
            // starts (VHOST_VRING_F_LOG and log_guest_addr) or ends. The ring keeps running: the
            // queue thread takes the new log address with the next used element. (Stopping it
            // waited for every request in flight, with QEMU holding its big lock meanwhile.)
            v.addr = a;
            applyDirtyLog(v);
            return;
        }
        stopRunning(v);
        v.addr = a;
        if (v.state != State.STOPPED) {
            reactivate(v, judged);
        }
        settle(v);
    }

    /**
     * Translates the front-end's ring addresses (its user addresses) to guest addresses in the
     * current memory and has the ring judge the placement.
     *
     * @throws RingConfigurationException why the ring cannot be placed there
     */
    private RingGeometry place(int index, int num, VringAddr a) throws RingConfigurationException {
        GuestMemory memory = session.memory();
        long d;
        long av;
        long u;
        try {
            d = memory.userToGuest(a.desc(), SplitRingLayout.descTableBytes(num));
            av = memory.userToGuest(a.avail(), SplitRingLayout.availBytes(num));
            u = memory.userToGuest(a.used(), SplitRingLayout.usedBytes(num));
        } catch (GuestMemoryException e) {
            throw new RingConfigurationException(new RingViolation(RingViolation.Reason.RING_OUTSIDE_MEMORY, index, a.desc(), num, 0),
                    "vring addresses outside guest memory: " + e.getMessage());
        }
        try {
            return RingGeometry.of(index, memory, num, d, av, u);
        } catch (RingConfigurationException e) {
            throw new RingConfigurationException(e.violation(), "vring addresses refused by the ring: " + e.getMessage());
        }
    }

    /** GET_VRING_BASE: stops the ring and returns where the front-end resumes. */
    int getBase(String name, int index) throws VhostUserProtocolException {
        Vring v = vring(name, index);
        stopRunning(v);
        boolean active = v.queue.isActive();
        int base = active ? v.queue.nextAvail() : v.base;
        int used = active ? v.queue.nextUsed() : v.used;
        v.queue.deactivate();
        v.state = State.STOPPED;
        v.base = base;
        v.used = -1;
        LOG.debug("vhost-user: queue {} stopped at avail index {}, used index {}", index, base, used);
        // The ring is stopped: its kick and call are done with (as libvhost-user).
        closeKickAndCall(v);
        return base;
    }

    /**
     * SET_VRING_KICK / _CALL / _ERR. Takes the fd (unless NOFD) and makes it non-blocking: the
     * counter (or, for a fd that is not an eventfd at all, the pipe or socket) is the front-end's
     * to fill, and a write of ours that blocks would stop an I/O thread serving other queues.
     */
    void setFd(String name, VringFdKind kind, int index, MessageFds fds) throws VhostUserProtocolException {
        Vring v = vring(name, index);
        EventFd fd = fds.count() == 0 ? null : adopt(name, fds);
        switch (kind) {
            case KICK -> {
                stopRunning(v);
                close(v.kick);
                v.kick = fd;
                if (v.state == State.STOPPED) {
                    v.state = State.STARTED;
                    if ((session.features() & VhostUserProtocol.F_PROTOCOL_FEATURES) == 0) {
                        v.enabled = true; // without protocol features a ring starts enabled
                    }
                    activate(v, null);
                } else if (v.state == State.HELD) {
                    v.state = State.STARTED;
                }
                settle(v);
            }
            case CALL -> {
                if (v.state == State.RUNNING && v.interrupt.retiredCount() < CallFd.MAX_RETIRED) {
                    // Swapped under the running queue, without a drain (which could take as long
                    // as the storage likes): the queue thread closes the old fd itself.
                    v.interrupt.swap(fd);
                    v.call = fd;
                } else {
                    boolean wasRunning = v.state == State.RUNNING;
                    stopRunning(v);
                    close(v.call);
                    v.call = fd;
                    if (wasRunning) {
                        settle(v);
                    }
                }
                if (fd != null) {
                    // As libvhost-user: a driver that reconnected may wait for an interrupt for
                    // used buffers published before it gave us this fd.
                    fd.signal();
                }
            }
            case ERR -> {
                close(v.err);
                v.err = fd;
            }
        }
    }

    private static EventFd adopt(String name, MessageFds fds) throws VhostUserProtocolException {
        int fd = fds.take(0);
        try {
            Libc.setNonBlocking(fd);
        } catch (ErrnoException e) {
            UnixSocket.closeQuietly(fd);
            throw new VhostUserProtocolException(name + ": cannot make the file descriptor non-blocking: " + e.getMessage());
        }
        return EventFd.adopt(fd, true);
    }

    void setEnable(String name, int index, boolean enable) throws VhostUserProtocolException {
        Vring v = vring(name, index);
        v.enabled = enable;
        if (enable) {
            if (v.state == State.HELD) {
                v.state = State.STARTED;
            }
            settle(v);
        } else {
            stopRunning(v);
        }
    }

    /**
     * Installs new guest memory: running queues are stopped (so nothing in flight points into
     * the old mappings), {@code install} swaps the memory, started rings are judged again in the
     * new memory with the same indices, and every ring that can run runs: those that ran, and
     * those that waited for this memory.
     */
    void replaceMemory(Runnable install) {
        for (Vring v : vrings) {
            stopRunning(v);
        }
        install.run();
        for (Vring v : vrings) {
            if (v.state != State.STOPPED) {
                reactivate(v, null);
            }
        }
        for (Vring v : vrings) {
            settle(v);
        }
    }

    /**
     * Stops every running queue and keeps everything else (ring settings, fds, where each ring
     * stopped): a device reset by SET_STATUS 0, which may come before GET_VRING_BASE. The
     * started rings are held until the front-end starts them again.
     */
    void stopAll() {
        for (Vring v : vrings) {
            stopRunning(v);
            if (v.state == State.STARTED) {
                v.state = State.HELD;
            }
        }
    }

    /** DRIVER_OK: the rings held by a device reset, and any started ring that can run, run. */
    void startStopped() {
        for (Vring v : vrings) {
            if (v.state == State.HELD) {
                v.state = State.STARTED;
            }
            settle(v);
        }
    }

    /**
     * Sets each active ring's logging to what the session says now: the log while VHOST_F_LOG_ALL
     * is negotiated (every write into guest buffers is logged), and the used ring logged at the
     * ring's log_guest_addr when its SET_VRING_ADDR asked for VHOST_VRING_F_LOG, at its own
     * address otherwise. Safe while the rings run: the queue thread reads it once per used element.
     */
    void applyDirtyLog() {
        for (Vring v : vrings) {
            if (v.queue.isActive()) {
                applyDirtyLog(v);
            }
        }
    }

    private void applyDirtyLog(Vring v) {
        org.jvirtio.api.DirtyLog log = session.dirtyLog();
        if (log == null) {
            v.queue.setDirtyLog(null);
        } else if ((v.addr.flags() & VhostUserProtocol.VRING_F_LOG) != 0) {
            v.queue.setDirtyLog(log, v.addr.log());
        } else {
            v.queue.setDirtyLog(log);
        }
    }

    /**
     * Installs a new dirty log with the running rings stopped (so no queue thread marks the old
     * mapping after this returns), then starts them again logging into the new one.
     */
    void replaceDirtyLog(Runnable install) {
        List<Vring> wereRunning = new ArrayList<>();
        for (Vring v : vrings) {
            if (v.state == State.RUNNING) {
                stopRunning(v);
                wereRunning.add(v);
            }
        }
        install.run();
        applyDirtyLog();
        for (Vring v : wereRunning) {
            settle(v);
        }
    }

    /** Stops every queue and forgets everything the front-end set (a device reset or a disconnect). */
    void reset() {
        for (Vring v : vrings) {
            stopRunning(v);
            v.queue.deactivate();
            closeKickAndCall(v);
            close(v.err);
            v.err = null;
            v.num = 0;
            v.addr = null;
            v.base = 0;
            v.used = -1;
            v.enabled = false;
            v.state = State.STOPPED;
        }
    }

    /**
     * Judges a stopped, started ring again in the current memory, keeping its indices.
     *
     * @param judged its placement already judged in the current memory, or null
     */
    private void reactivate(Vring v, RingGeometry judged) {
        if (v.queue.isActive()) {
            v.base = v.queue.nextAvail();
            v.used = v.queue.nextUsed();
            v.queue.deactivate();
        }
        activate(v, judged);
    }

    /**
     * Has the ring take its placement in the current memory, at {@link Vring#base} and
     * {@link Vring#used}; a ring that cannot be placed yet (no size, addresses or memory, or
     * refused) stays inactive and waits for the next change.
     *
     * @param judged its placement already judged in the current memory, or null
     */
    private void activate(Vring v, RingGeometry judged) {
        int index = v.queue.index();
        if (v.addr == null || v.num == 0 || session.memory().regionCount() == 0) {
            LOG.info("vhost-user: queue {} is started; it runs once its size, addresses and memory are set", index);
            return;
        }
        try {
            RingGeometry g = judged != null ? judged : place(index, v.num, v.addr);
            v.queue.activate(g, session.features(), v.base, v.used);
            v.used = -1;
            LOG.debug("vhost-user: queue {} active: size {}, next avail {}, next used {}", index, v.num, v.queue.nextAvail(),
                    v.queue.nextUsed());
            applyDirtyLog(v);
            java.lang.foreign.MemorySegment region = session.inflight(index, v.num);
            if (region != null) {
                org.jvirtio.ring.SplitInflight.Attached at = v.queue.attachInflight(region, session.inflightEntries());
                if (at.inconsistency() != null) {
                    LOG.warn("vhost-user: queue {}: the inflight region is inconsistent ({}); started afresh, nothing resubmitted",
                            index, at.inconsistency());
                } else if (at.resubmitted() > 0) {
                    LOG.info("vhost-user: queue {}: resubmitting {} requests a previous backend left in flight", index,
                            at.resubmitted());
                }
            }
        } catch (RingConfigurationException e) {
            LOG.warn("vhost-user: queue {} cannot run: {}", index, e.getMessage());
        }
    }

    /**
     * Brings the ring where the rule says it belongs: running when it is started, enabled and
     * placed validly (activated here if it is not yet), else as it is.
     */
    private void settle(Vring v) {
        if (v.state != State.STARTED || !v.enabled) {
            return;
        }
        if (!v.queue.isActive()) {
            activate(v, null);
            if (!v.queue.isActive()) {
                return;
            }
        }
        session.beforeFirstStart();
        v.interrupt = new CallFd(v.call);
        queues.start(new QueueBinding(v.queue.index(), v.queue, v.kick, v.interrupt), session.memory());
        v.state = State.RUNNING;
    }

    /**
     * Stops a running queue (it stays started), waiting for what is in flight up to the drain
     * limit. When the stop gave up, the abandoned requests keep the old queue object (its chains
     * are theirs until they complete into nothing) and the ring goes on with a new one, at the
     * same indices: the front-end resumes from the avail index we were at, and the abandoned
     * heads never come back.
     */
    private void stopRunning(Vring v) {
        if (v.state != State.RUNNING) {
            return;
        }
        v.state = State.STARTED;
        boolean drained = queues.stop(v.queue.index());
        // The queue thread no longer signals: call fds swapped out under it are closed here.
        v.interrupt.closeRetired();
        v.interrupt = null;
        if (!drained) {
            SplitQueue old = v.queue;
            SplitQueue fresh = newQueue(old.index());
            v.queue = fresh;
            if (old.isActive()) {
                fresh.activate(old.geometry(), session.features(), old.nextAvail(), old.nextUsed());
                applyDirtyLog(v);
            }
        }
    }

    /**
     * A queue's interrupt: the call eventfd the front-end set, which SET_VRING_CALL may replace
     * while the queue runs. Only the queue's thread signals; the control thread swaps. A fd
     * swapped out is closed by the queue thread at its next signal (before it reads the current
     * one, so it never writes to a closed fd, or to whatever reused its number), or by the
     * control thread once the queue stopped. One volatile read per interrupt, which is a
     * write(2) anyway.
     */
    static final class CallFd implements Interrupt {
        /** More swaps than this while the queue never signalled: the next one drains instead. */
        static final int MAX_RETIRED = 8;
        private volatile EventFd current;
        private volatile boolean anyRetired;
        private final List<EventFd> retired = new ArrayList<>();

        CallFd(EventFd initial) {
            this.current = initial;
        }

        @Override
        public void signal() {
            if (anyRetired) {
                closeRetired();
            }
            EventFd c = current;
            if (c != null) {
                c.signal();
            }
        }

        synchronized void swap(EventFd next) {
            if (current != null) {
                retired.add(current);
                anyRetired = true;
            }
            current = next;
        }

        synchronized int retiredCount() {
            return retired.size();
        }

        synchronized void closeRetired() {
            anyRetired = false;
            retired.forEach(EventFd::close);
            retired.clear();
        }
    }

    private static void closeKickAndCall(Vring v) {
        close(v.kick);
        v.kick = null;
        close(v.call);
        v.call = null;
    }

    private static void close(EventFd fd) {
        if (fd != null) {
            fd.close();
        }
    }
}
