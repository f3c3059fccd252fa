package org.jvirtio.net;

import com.google.inject.AbstractModule;
import com.google.inject.Binder;
import com.google.inject.multibindings.Multibinder;

/**
 * What a port's {@link VirtioNetDevice} needs: its {@link SwitchPort}, its {@link NetOptions} and
 * its forwarding stages ({@link #stages}, none unless bound). A command of your own installs it
 * and adds its stages.
 */
public final class NetModule extends AbstractModule {
    private final SwitchPort port;
    private final NetOptions options;

    public NetModule(SwitchPort port, NetOptions options) {
        this.port = port;
        this.options = options;
    }

    /** The port's stages, to {@code addBinding()} to (in the order they run). */
    public static Multibinder<FrameStage> stages(Binder binder) {
        return Multibinder.newSetBinder(binder, FrameStage.class);
    }

    @Override
    protected void configure() {
        bind(SwitchPort.class).toInstance(port);
        bind(NetOptions.class).toInstance(options);
        stages(binder());
    }
}
