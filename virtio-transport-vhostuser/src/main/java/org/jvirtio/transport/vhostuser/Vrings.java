package org.jvirtio.transport.vhostuser;

import java.util.ArrayList;
import java.util.List;

import org.jvirtio.api.EventFd;
import org.jvirtio.api.GuestMemory;
import org.jvirtio.api.linux.ErrnoException;
import org.jvirtio.api.linux.Libc;
import org.jvirtio.host.DeviceQueues;
import org.jvirtio.transport.vhostuser.FrontendRequest.VringFdKind;
import org.jvirtio.transport.vhostuser.VhostUserCodec.VringAddr;

/**
 * The rings of one connection: each message that names a ring goes to its {@link Vring} (which
 * holds the state machine), and what concerns every ring happens here: new guest memory, a new
 * dirty log, a device reset, DRIVER_OK, a disconnect. Control thread only.
 */
final class Vrings {
    /** What the rings need from the rest of the session. */
    interface Session {
        GuestMemory memory();

        /** The negotiated virtio features, VHOST_USER_F_PROTOCOL_FEATURES included. */
        long features();

        /** Called before the first queue of a driver session starts. */
        void beforeFirstStart();

        /** Queue {@code index}'s part of the inflight region for a (packed or split) ring of {@code size}, or null. */
        java.lang.foreign.MemorySegment inflight(int index, int size, boolean packed);

        /** Entries per queue of the inflight region (its queue size, at least the ring's). */
        int inflightEntries();

        /** The dirty log while VHOST_F_LOG_ALL is negotiated and a log is shared, else null. */
        org.jvirtio.api.DirtyLog dirtyLog();
    }

    private final Vring[] vrings;

    Vrings(DeviceQueues queues, Session session, org.jvirtio.ring.RingQueue.ViolationListener onViolation) {
        this.vrings = new Vring[queues.device().queueCount()];
        for (int i = 0; i < vrings.length; i++) {
            vrings[i] = new Vring(i, queues, session, onViolation);
        }
    }

    int count() {
        return vrings.length;
    }

    /** Where ring {@code index} is in its life (for tests). */
    Vring.State state(int index) {
        return vrings[index].state();
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
            if (v.running()) {
                return true;
            }
        }
        return false;
    }

    /** The error eventfd of queue {@code index}, or null. */
    EventFd errFd(int index) {
        return index >= 0 && index < vrings.length ? vrings[index].err() : null;
    }

    void setNum(String name, int index, int num) throws VhostUserProtocolException {
        vring(name, index).setNum(name, num);
    }

    void setBase(String name, int index, int base) throws VhostUserProtocolException {
        vring(name, index).setBase(name, base);
    }

    void setAddr(String name, VringAddr a) throws VhostUserProtocolException {
        vring(name, a.index()).setAddr(name, a);
    }

    /** GET_VRING_BASE: stops the ring and returns where the front-end resumes. */
    int getBase(String name, int index) throws VhostUserProtocolException {
        return vring(name, index).getBase();
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
            case KICK -> v.setKick(fd);
            case CALL -> v.setCall(fd);
            case ERR -> v.setErr(fd);
        }
    }

    private static EventFd adopt(String name, MessageFds fds) throws VhostUserProtocolException {
        int fd = fds.take(0);
        try {
            Libc.setNonBlocking(fd);
        } catch (ErrnoException e) {
            Libc.closeQuietly(fd);
            throw new VhostUserProtocolException(name + ": cannot make the file descriptor non-blocking: " + e.getMessage());
        }
        return EventFd.adopt(fd, true);
    }

    void setEnable(String name, int index, boolean enable) throws VhostUserProtocolException {
        vring(name, index).setEnable(enable);
    }

    /**
     * Installs new guest memory: running queues are stopped (so nothing in flight points into
     * the old mappings), {@code install} swaps the memory, started rings are judged again in the
     * new memory with the same indices, and every ring that can run runs: those that ran, and
     * those that waited for this memory.
     */
    void replaceMemory(Runnable install) {
        for (Vring v : vrings) {
            v.stop();
        }
        install.run();
        for (Vring v : vrings) {
            v.rejudge();
        }
        for (Vring v : vrings) {
            v.settle();
        }
    }

    /**
     * Stops every running queue and keeps everything else (ring settings, fds, where each ring
     * stopped): a device reset by SET_STATUS 0, which may come before GET_VRING_BASE. The
     * started rings are held until the front-end starts them again.
     */
    void stopAll() {
        for (Vring v : vrings) {
            v.hold();
        }
    }

    /** DRIVER_OK: the rings held by a device reset, and any started ring that can run, run. */
    void startStopped() {
        for (Vring v : vrings) {
            v.release();
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
            v.applyDirtyLog();
        }
    }

    /**
     * Installs a new dirty log with the running rings stopped (so no queue thread marks the old
     * mapping after this returns), then starts them again logging into the new one.
     */
    void replaceDirtyLog(Runnable install) {
        List<Vring> wereRunning = new ArrayList<>();
        for (Vring v : vrings) {
            if (v.running()) {
                v.stop();
                wereRunning.add(v);
            }
        }
        install.run();
        applyDirtyLog();
        for (Vring v : wereRunning) {
            v.settle();
        }
    }

    /** Stops every queue and forgets everything the front-end set (a device reset or a disconnect). */
    void reset() {
        for (Vring v : vrings) {
            v.reset();
        }
    }
}
