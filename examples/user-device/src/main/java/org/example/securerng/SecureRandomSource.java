package org.example.securerng;

import java.lang.foreign.MemorySegment;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;

import org.jvirtio.rng.EntropySource;

/** The user's own entropy source for jvirtio's virtio-rng: Java's DRBG instead of getrandom(2). */
public final class SecureRandomSource implements EntropySource {
    private final SecureRandom random;
    private final byte[] buffer = new byte[4096]; // reused: one queue thread calls fill

    public SecureRandomSource() throws NoSuchAlgorithmException {
        random = SecureRandom.getInstance("DRBG");
    }

    @Override
    public int fill(MemorySegment region, long offset, int length) {
        int done = 0;
        while (done < length) {
            int n = Math.min(buffer.length, length - done);
            random.nextBytes(buffer);
            MemorySegment.copy(MemorySegment.ofArray(buffer), 0, region, offset + done, n);
            done += n;
        }
        return done;
    }

    @Override
    public String toString() {
        return "SecureRandom DRBG";
    }
}
