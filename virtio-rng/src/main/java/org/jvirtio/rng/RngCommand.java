package org.jvirtio.rng;

import java.io.IOException;
import java.nio.file.Path;

import com.google.inject.AbstractModule;
import com.google.inject.Module;
import org.jvirtio.runner.DeviceCommand;
import org.jvirtio.runner.Flags;

/** {@code bin/vhost-user rng}: virtio-rng for QEMU's vhost-user-rng-pci. */
public final class RngCommand implements DeviceCommand {
    String source;
    long maxBytes;
    long periodMillis;

    private EntropySource opened;

    @Override
    public String name() {
        return "rng";
    }

    @Override
    public String description() {
        return "virtio-rng (entropy device): QEMU's vhost-user-rng-pci; the guest reads it as /dev/hwrng.";
    }

    @Override
    public void flags(Flags flags) {
        flags.string("--source", "getrandom|FILE", "Where the bytes come from: getrandom(2), or a file such as /dev/urandom.",
                "getrandom", v -> source = v);
        flags.longInteger("--max-bytes", "N", "Rate limit: at most this many bytes per --period-ms (default: 0, no limit).",
                0, v -> maxBytes = v);
        flags.longInteger("--period-ms", "MS", "Rate limit period in milliseconds.", 1000, v -> periodMillis = v);
    }

    @Override
    public Module module() throws IOException {
        RateLimit limit = maxBytes == 0 ? RateLimit.NONE : new RateLimit(maxBytes, periodMillis);
        EntropySource s = source.equals("getrandom") ? EntropySource.getrandom() : EntropySource.file(Path.of(source));
        opened = s;
        return new AbstractModule() {
            @Override
            protected void configure() {
                bind(EntropySource.class).toInstance(s);
                bind(RateLimit.class).toInstance(limit);
                install(new VirtioRngModule());
            }
        };
    }

    @Override
    public String describe() {
        return "entropy from " + opened + (maxBytes == 0 ? "" : ", at most " + maxBytes + " bytes per " + periodMillis + " ms");
    }

    @Override
    public void close() throws IOException {
        if (opened != null) {
            opened.close();
            opened = null;
        }
    }
}
