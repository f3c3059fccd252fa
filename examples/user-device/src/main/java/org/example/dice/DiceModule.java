package org.example.dice;

import com.google.inject.AbstractModule;
import com.google.inject.name.Names;
import org.jvirtio.api.VirtioDevice;

/** Guice bindings: the runner serves whatever VirtioDevice is bound. */
public final class DiceModule extends AbstractModule {
    private final int face;

    public DiceModule(int face) {
        this.face = face;
    }

    @Override
    protected void configure() {
        bindConstant().annotatedWith(Names.named("face")).to(face);
        bind(VirtioDevice.class).to(DiceDevice.class);
    }
}
