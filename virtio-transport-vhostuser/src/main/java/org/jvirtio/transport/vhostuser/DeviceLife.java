package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.DeviceStatus;
import org.jvirtio.api.FeatureNegotiation;
import org.jvirtio.api.VirtioDevice;
import org.jvirtio.host.DeviceQueues;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;

/**
 * The device's life as one front-end connection drives it: the virtio features offered and
 * negotiated (SET_FEATURES, with VHOST_F_LOG_ALL toggled under running rings while a migration
 * starts and ends), the status byte (SET_STATUS, with DEVICE_NEEDS_RESET kept once a ring broke),
 * and whether the device model is activated (on the first queue start of a driver session) or
 * reset (status 0, RESET_DEVICE, new features for a new driver session, disconnect). Control
 * thread only, but {@link #status()}, which any thread may read.
 */
final class DeviceLife {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceLife.class);

    private final VirtioDevice device;
    private final DeviceQueues queues;
    private final DeviceContext context;
    private final InflightTracking inflight;
    /** VHOST_F_LOG_ALL offered (BackendOptions.offerDirtyLog). */
    private final boolean offerDirtyLog;
    private Vrings vrings;
    private long features;
    private volatile int status;
    private boolean activated;

    DeviceLife(DeviceQueues queues, DeviceContext context, InflightTracking inflight, boolean offerDirtyLog) {
        this.device = queues.device();
        this.queues = queues;
        this.context = context;
        this.inflight = inflight;
        this.offerDirtyLog = offerDirtyLog;
    }

    /** The connection's rings (set once, right after they are made: they ask {@link #features()} as they are). */
    void vrings(Vrings v) {
        this.vrings = v;
    }

    /** The negotiated virtio features, VHOST_USER_F_PROTOCOL_FEATURES and VHOST_F_LOG_ALL included. */
    long features() {
        return features;
    }

    /** The device status byte the front-end last set (with DEVICE_NEEDS_RESET once a ring broke). */
    int status() {
        return status;
    }

    /** A ring broke: DEVICE_NEEDS_RESET stays set until the driver resets the device. */
    void needsReset() {
        status |= DeviceStatus.DEVICE_NEEDS_RESET;
    }

    /** Before the first queue of a driver session starts: the device model is activated. */
    void beforeFirstStart() {
        if (!activated) {
            device.activate(context);
            activated = true;
        }
    }

    /** SET_STATUS: a legal transition of the status byte; 0 resets, DRIVER_OK starts the stopped rings. */
    void setStatus(String name, int s) throws VhostUserProtocolException {
        int current = status & ~DeviceStatus.DEVICE_NEEDS_RESET;
        if (!DeviceStatus.isLegalAggregateTransition(current, s)) {
            throw new VhostUserProtocolException(name + ": status " + DeviceStatus.describe(s)
                    + " cannot follow " + DeviceStatus.describe(current));
        }
        if (s == 0) {
            statusReset();
        } else {
            status = s | (status & DeviceStatus.DEVICE_NEEDS_RESET);
            if ((s & DeviceStatus.DRIVER_OK) != 0) {
                vrings.startStopped();
            }
        }
    }

    /**
     * SET_STATUS 0: the driver reset the device. Its queues stop (requests in flight complete
     * first, within the drain limit) and the device model resets; the rings keep what the
     * front-end set and where they stopped, because QEMU up to 7.2 sends this before the
     * GET_VRING_BASE of each ring (8.0 on sends it after), and GET_VRING_BASE must still return
     * the true next avail index: QEMU resumes from it after a pause or a migration, and a 0 would
     * make the device replay every request in the ring.
     */
    private void statusReset() {
        vrings.stopAll();
        inflight.close();
        if (activated) {
            device.reset();
            activated = false;
        }
        status = 0;
    }

    /** SET_FEATURES. */
    void setFeatures(String name, long f) throws VhostUserProtocolException {
        FeatureNegotiation.Result r = FeatureNegotiation.negotiate(offeredFeatures(), f, true, FeatureNegotiation.VHOST_USER_TOLERATED);
        if (!r.accepted()) {
            throw new VhostUserProtocolException(name + ": " + r.message());
        }
        if (r.ignoredBits() != 0 && (r.features() & ~F_LOG_ALL) != (features & ~F_LOG_ALL)) {
            LOG.warn("vhost-user: the front-end acknowledged {}, which this backend does not offer; ignored (QEMU 7.2 passes"
                    + " VIRTIO_F_RING_RESET on from its own transport: queue_reset=off in the -device options stops it)",
                    org.jvirtio.api.VirtioFeatures.describe(r.ignoredBits()));
        }
        f = r.features();
        if (activated && (f & ~F_LOG_ALL) == (features & ~F_LOG_ALL)) {
            // Only VHOST_F_LOG_ALL changed: migration starts or ends (QEMU toggles it while the
            // rings run); the running rings start or stop logging, nothing else changes.
            features = f;
            vrings.applyDirtyLog();
            return;
        }
        if (activated && f != features) {
            if (vrings.anyRunning()) {
                throw new VhostUserProtocolException(name + ": features changed from 0x" + Long.toHexString(features)
                        + " to 0x" + Long.toHexString(f) + " while a queue runs");
            }
            // A new driver session (firmware first, then the guest kernel, renegotiate): the
            // device starts over with the new features when the next queue starts.
            queues.stopAll();
            device.reset();
            activated = false;
        }
        features = f;
    }

    /**
     * The virtio features offered: the device's, the rings' (packed too, where the device allows
     * it), PROTOCOL_FEATURES, and LOG_ALL when dirty logging is offered.
     */
    long offeredFeatures() {
        return FeatureNegotiation.offeredOverVhostUser(device) | F_PROTOCOL_FEATURES | (offerDirtyLog ? F_LOG_ALL : 0);
    }

    /** RESET_DEVICE / RESET_OWNER, or the connection gone: the rings forget everything, the device resets. */
    void reset() {
        vrings.reset();
        inflight.close();
        if (activated) {
            queues.stopAll();
            device.reset();
            activated = false;
        }
        features = 0;
        status = 0;
    }
}
