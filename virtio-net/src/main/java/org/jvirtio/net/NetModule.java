package org.jvirtio.net;

import com.google.inject.AbstractModule;
import com.google.inject.Binder;
import com.google.inject.multibindings.Multibinder;

/**
 * What a port's {@link VirtioNetDevice} needs: its {@link SwitchPort}, its {@link NetOptions} and
 * its forwarding stages ({@link #stages} for the port, {@link #switchStages} for its whole switch;
 * none unless bound). A command of your own installs it
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

    /**
     * Stages for the whole switch the port is on: they run on every frame any port of that switch
     * sends (after the sending port's own), once however many ports bind the same instance; they
     * stay for the switch's life.
     */
    public static Multibinder<FrameStage> switchStages(Binder binder) {
        return Multibinder.newSetBinder(binder, FrameStage.class, com.google.inject.name.Names.named(SWITCH));
    }

    /** The name switch-wide stages are bound under. */
    public static final String SWITCH = "switch";

    @Override
    protected void configure() {
        bind(SwitchPort.class).toInstance(port);
        bind(NetOptions.class).toInstance(options);
        stages(binder());
        switchStages(binder());
    }
}
