package org.jvirtio.rng;

import java.io.IOException;
import java.nio.file.Path;

import com.google.inject.AbstractModule;
import com.google.inject.Module;
import org.jvirtio.runner.DeviceCommand;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bin/vhost-user rng}: virtio-rng for QEMU's vhost-user-rng-pci. */
@Command(name = "rng", sortOptions = false,
        description = "virtio-rng (entropy device): QEMU's vhost-user-rng-pci; the guest reads it as /dev/hwrng.")
public final class RngCommand implements DeviceCommand {
    @Option(names = "--source", defaultValue = "getrandom", paramLabel = "getrandom|FILE",
            description = "Where the bytes come from: getrandom(2), or a file such as /dev/urandom (default: ${DEFAULT-VALUE}).")
    String source;

    @Option(names = "--max-bytes", defaultValue = "0", description = "Rate limit: at most this many bytes per --period-ms (default: 0, no limit).")
    long maxBytes;

    @Option(names = "--period-ms", defaultValue = "1000", description = "Rate limit period in milliseconds (default: ${DEFAULT-VALUE}).")
    long periodMillis;

    private EntropySource opened;

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
