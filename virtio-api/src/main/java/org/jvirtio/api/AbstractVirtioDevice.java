package org.jvirtio.api;

/**
 * A {@link VirtioDevice} with the defaults: no device features, no configuration space (or the
 * {@link ConfigSpace} given), one queue of up to 1024 entries. A device states only what it is
 * (its id, and whatever of the above differs) and implements {@link #openQueue}. The negotiated
 * features and the way back to the driver are at {@link #context()} once the driver session
 * started.
 */
public abstract class AbstractVirtioDevice implements VirtioDevice {
    private final int deviceId;
    private final ConfigSpace config;
    private volatile DeviceContext context;

    /** A device without a configuration space. */
    protected AbstractVirtioDevice(int deviceId) {
        this(deviceId, new ConfigSpace(0));
    }

    /** A device whose configuration space is {@code config}: its size, reads, writes and generation. */
    protected AbstractVirtioDevice(int deviceId, ConfigSpace config) {
        if (deviceId <= 0 || deviceId > 0xffff) {
            throw new IllegalArgumentException("device id " + deviceId + " is not in [1, 65535]");
        }
        this.deviceId = deviceId;
        this.config = java.util.Objects.requireNonNull(config, "config");
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
        return config.size();
    }

    @Override
    public byte[] readConfig(int offset, int length) {
        return config.read(offset, length);
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        config.write(offset, data);
    }

    @Override
    public int configGeneration() {
        return config.generation();
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

    /** The configuration space: declare fields in it from a subclass's field initializers ({@code config().u64(0)}). */
    protected final ConfigSpace config() {
        return config;
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
