package org.jvirtio.testkit;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.DeviceContext;
import org.jvirtio.api.VirtioFeatures;

/**
 * A {@link DeviceContext} for a device under test without a transport: it reports the features
 * given, and records what the device tells the driver (configuration changes, requests to be
 * reset) for the test to check.
 */
public final class RecordingContext implements DeviceContext {
    private final long features;
    /** Configuration changes announced. */
    public final AtomicInteger configChanges = new AtomicInteger();
    /** Each needsReset as "queue N: reason" (queue -1 for the device). */
    public final List<String> resets = new CopyOnWriteArrayList<>();

    /** @param features the negotiated features the device sees */
    public RecordingContext(long features) {
        this.features = features;
    }

    /** A context with the ring features (VERSION_1, INDIRECT_DESC, EVENT_IDX) and {@code deviceFeatures}. */
    public static RecordingContext withRingFeatures(long deviceFeatures) {
        return new RecordingContext(VirtioFeatures.RING_FEATURES | deviceFeatures);
    }

    @Override
    public long negotiatedFeatures() {
        return features;
    }

    @Override
    public void notifyConfigChange() {
        configChanges.incrementAndGet();
    }

    @Override
    public void needsReset(int queue, String reason) {
        resets.add("queue " + queue + ": " + reason);
    }
}
