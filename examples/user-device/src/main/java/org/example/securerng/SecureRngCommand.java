package org.example.securerng;

import java.io.IOException;
import java.security.NoSuchAlgorithmException;

import java.util.List;

import com.google.inject.Module;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.rng.EntropySource;
import org.jvirtio.rng.RateLimit;
import org.jvirtio.rng.VirtioRng;
import org.jvirtio.rng.VirtioRngModule;

/** {@code bin/vhost-user secure-rng}: jvirtio's virtio-rng with the user's entropy source bound in. */
public final class SecureRngCommand implements DeviceCommand<VirtioRng> {
    @Override
    public String name() {
        return "secure-rng";
    }

    @Override
    public String description() {
        return "virtio-rng fed by Java's SecureRandom DRBG.";
    }

    @Override
    public Class<VirtioRng> deviceClass() {
        return VirtioRng.class;
    }

    @Override
    public List<Module> modules() throws IOException {
        EntropySource source;
        try {
            source = new SecureRandomSource();
        } catch (NoSuchAlgorithmException e) {
            throw new IOException("no DRBG: " + e.getMessage(), e);
        }
        // jvirtio's virtio-rng module builds the device from whatever source and limit are bound.
        return List.of(binder -> {
            binder.bind(EntropySource.class).toInstance(source);
            binder.bind(RateLimit.class).toInstance(RateLimit.NONE);
        }, new VirtioRngModule());
    }
}
