package org.jvirtio.rng;

import java.io.IOException;
import java.nio.file.Path;

import java.util.List;

import com.google.inject.Module;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/** {@code bin/vhost-user rng}: virtio-rng for QEMU's vhost-user-rng-pci. */
public final class RngCommand implements DeviceCommand<VirtioRng> {
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
    public Class<VirtioRng> deviceClass() {
        return VirtioRng.class;
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
    public List<Module> modules() throws IOException {
        RateLimit limit = maxBytes == 0 ? RateLimit.NONE : new RateLimit(maxBytes, periodMillis);
        EntropySource s = source.equals("getrandom") ? EntropySource.getrandom() : EntropySource.file(Path.of(source));
        opened = s;
        return List.of(b -> {
            b.bind(EntropySource.class).toInstance(s);
            b.bind(RateLimit.class).toInstance(limit);
        }, new VirtioRngModule());
    }

    @Override
    public String describe(VirtioRng device) {
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
