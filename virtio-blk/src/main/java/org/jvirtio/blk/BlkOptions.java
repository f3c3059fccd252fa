package org.jvirtio.blk;

/**
 * How a virtio-blk device presents its backend.
 *
 * @param queues      number of request queues (MQ when more than one)
 * @param queueSize   largest queue size offered (the front-end picks the size; QEMU's
 *                    queue-size goes up to 1024)
 * @param serial      GET_ID answer (at most 20 bytes, ASCII)
 * @param readOnly    refuse writes even if the backend allows them
 */
public record BlkOptions(int queues, int queueSize, String serial, boolean readOnly) {
    public BlkOptions {
        if (queues < 1 || queues > 64) {
            throw new IllegalArgumentException("queues must be in [1, 64]: " + queues);
        }
        if (queueSize < 2 || queueSize > 32768 || Integer.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("queue size must be a power of two in [2, 32768]: " + queueSize);
        }
        if (serial.getBytes(java.nio.charset.StandardCharsets.US_ASCII).length > VirtioBlk.ID_BYTES) {
            throw new IllegalArgumentException("serial longer than 20 bytes: " + serial);
        }
    }

    public static BlkOptions defaults() {
        return new BlkOptions(1, 1024, "jvirtio", false);
    }
}
