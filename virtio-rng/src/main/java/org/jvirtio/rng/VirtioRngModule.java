package org.jvirtio.rng;

import com.google.inject.AbstractModule;
import com.google.inject.Provides;
import com.google.inject.Singleton;

/**
 * Guice bindings of virtio-rng: the device, made from whatever {@link EntropySource} and
 * {@link RateLimit} are bound. Install it with a module of your own that binds those two (your
 * own entropy source, say).
 */
public final class VirtioRngModule extends AbstractModule {
    @Provides
    @Singleton
    VirtioRng device(EntropySource source, RateLimit limit) {
        return new VirtioRng(source, limit);
    }
}
