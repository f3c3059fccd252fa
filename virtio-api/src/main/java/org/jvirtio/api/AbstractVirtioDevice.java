package org.jvirtio.api;

/**
 * A {@link VirtioDevice} with the defaults: no device features, no configuration space, one
 * queue of up to 1024 entries. A device states only what it is (its id, and whatever of the
 * above differs) and implements {@link #openQueue}. The negotiated features and the way back
 * to the driver are at {@link #context()} once the driver session started.
 */
public abstract class AbstractVirtioDevice implements VirtioDevice {
    private final int deviceId;
    private volatile DeviceContext context;

    protected AbstractVirtioDevice(int deviceId) {
        if (deviceId <= 0 || deviceId > 0xffff) {
            throw new IllegalArgumentException("device id " + deviceId + " is not in [1, 65535]");
        }
        this.deviceId = deviceId;
    }

    @Override
    public final int deviceId() {
        return deviceId;
    }

    @Override
    public long deviceFeatures() {
        return 0;
    }

    @Override
    public int configSize() {
        return 0;
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        return new byte[length];
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
    }

    @Override
    public int configGeneration() {
        return 0;
    }

    @Override
    public int queueCount() {
        return 1;
    }

    @Override
    public int maxQueueSize(int index) {
        return 1024;
    }

    /** Remembers the context; a device that overrides this calls {@code super.activate}. */
    @Override
    public void activate(DeviceContext context) {
        this.context = context;
    }

    /** Forgets the context; a device that overrides this calls {@code super.reset}. */
    @Override
    public void reset() {
        this.context = null;
    }

    /** The current driver session, or null between sessions. */
    protected final DeviceContext context() {
        return context;
    }

    /** Whether the driver accepted device feature {@code bit} in the current session. */
    protected final boolean negotiated(int bit) {
        DeviceContext c = context;
        return c != null && c.hasFeature(bit);
    }
}
