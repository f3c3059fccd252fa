package org.example.securerng;

import java.io.IOException;
import java.security.NoSuchAlgorithmException;

import com.google.inject.AbstractModule;
import com.google.inject.Module;
import org.jvirtio.rng.EntropySource;
import org.jvirtio.rng.RateLimit;
import org.jvirtio.rng.VirtioRngModule;
import org.jvirtio.runner.DeviceCommand;

/** {@code bin/vhost-user secure-rng}: jvirtio's virtio-rng with the user's entropy source bound in. */
public final class SecureRngCommand implements DeviceCommand {
    @Override
    public String name() {
        return "secure-rng";
    }

    @Override
    public String description() {
        return "virtio-rng fed by Java's SecureRandom DRBG.";
    }

    @Override
    public Module module() throws IOException {
        EntropySource source;
        try {
            source = new SecureRandomSource();
        } catch (NoSuchAlgorithmException e) {
            throw new IOException("no DRBG: " + e.getMessage(), e);
        }
        return new AbstractModule() {
            @Override
            protected void configure() {
                bind(EntropySource.class).toInstance(source);
                bind(RateLimit.class).toInstance(RateLimit.NONE);
                install(new VirtioRngModule());
            }
        };
    }
}
