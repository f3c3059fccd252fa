package org.jvirtio.api;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongConsumer;

/**
 * A device's configuration space laid out as fields (VIRTIO 1.3, 2.5: little-endian), so that a
 * device declares what its space holds instead of packing bytes. Give it to
 * {@link AbstractVirtioDevice#AbstractVirtioDevice(int, ConfigSpace)} and the device's
 * {@code configSize}, {@code readConfig}, {@code writeConfig} and {@code configGeneration} come
 * from it.
 *
 * <pre>{@code
 * ConfigSpace config = new ConfigSpace(16);
 * ConfigSpace.Field capacity = config.u64(0);                   // read-only to the driver
 * ConfigSpace.Field select = config.u8(8).writable(v -> ...);   // the driver writes it; the device reacts
 * capacity.set(2048);                                           // the device changes it: the generation moves
 * }</pre>
 *
 * <p>How transports write: a driver write covers some bytes of the space. Bytes of writable
 * fields take the written values; bytes of read-only fields, and bytes of no field, are left as
 * they are (QEMU's vhost-user front-end rewrites the whole space whenever the guest writes one
 * field, with the values it read before, so a write carrying read-only bytes is normal, not an
 * error). Once the whole write is applied, each writable field the write touched has its
 * listener called, in offset order, with its new value: a field that selects what another field
 * shows (virtio-input's select and subsel) sees both written before it reacts. Writes past the
 * space's size never reach it: the transports refuse them (see docs/DEVICES.md).
 *
 * <p>The generation ({@link #generation()}, VIRTIO 1.3, 2.5.1) moves whenever the device changes a
 * field (a {@code set} that changes bytes), so a driver reading several fields sees a torn read;
 * a driver's own writes do not move it. Telling the driver that the space changed is the
 * device's call ({@code context().notifyConfigChange()}), made when it changes a field on its
 * own (a resize), not when it answers a driver's write.
 *
 * <p>Thread-safe: the transport reads and writes from its control thread, the device may set
 * fields from any thread.
 */
public final class ConfigSpace {
    private final byte[] bytes;
    private final List<Field> fields = new ArrayList<>();
    private final AtomicInteger generation = new AtomicInteger();

    /** A space of {@code size} bytes, all zero, with no fields yet. */
    public ConfigSpace(int size) {
        if (size < 0 || size > 4096) {
            throw new IllegalArgumentException("config space of " + size + " bytes (0 to 4096)");
        }
        this.bytes = new byte[size];
    }

    /** One field: {@code width} bytes at {@code offset}, little-endian. */
    public final class Field {
        private final int offset;
        private final int width;
        private LongConsumer onWrite;
        private boolean writable;

        private Field(int offset, int width) {
            this.offset = offset;
            this.width = width;
        }

        public int offset() {
            return offset;
        }

        public int width() {
            return width;
        }

        /** The driver may write this field; {@code onWrite} gets its new value after a write that touched it (from the transport's thread). */
        public Field writable(LongConsumer onWrite) {
            synchronized (ConfigSpace.this) {
                this.writable = true;
                this.onWrite = onWrite;
            }
            return this;
        }

        /** The driver may write this field; nothing reacts. */
        public Field writable() {
            return writable(v -> { });
        }

        /** The value (u8 to u64, zero-extended; a byte field's first 8 bytes). */
        public long get() {
            synchronized (ConfigSpace.this) {
                long v = 0;
                for (int i = Math.min(width, 8) - 1; i >= 0; i--) {
                    v = (v << 8) | (bytes[offset + i] & 0xff);
                }
                return v;
            }
        }

        /** Sets an integer field (the low {@code width} bytes of {@code value}); the generation moves if it changed. */
        public void set(long value) {
            if (width > 8) {
                throw new IllegalStateException("a field of " + width + " bytes is set with bytes");
            }
            byte[] b = new byte[width];
            for (int i = 0; i < width; i++) {
                b[i] = (byte) (value >>> (8 * i));
            }
            set(b);
        }

        /** Sets the field's bytes: {@code value} first, the rest zero (a string, a bitmap); the generation moves if they changed. */
        public void set(byte[] value) {
            if (value.length > width) {
                throw new IllegalArgumentException(value.length + " bytes for a field of " + width);
            }
            synchronized (ConfigSpace.this) {
                byte[] next = Arrays.copyOf(value, width);
                if (!Arrays.equals(bytes, offset, offset + width, next, 0, width)) {
                    System.arraycopy(next, 0, bytes, offset, width);
                    generation.incrementAndGet();
                }
            }
        }

        /** The field's bytes. */
        public byte[] bytes() {
            synchronized (ConfigSpace.this) {
                return Arrays.copyOfRange(bytes, offset, offset + width);
            }
        }
    }

    public Field u8(int offset) {
        return field(offset, 1);
    }

    public Field u16(int offset) {
        return field(offset, 2);
    }

    public Field u32(int offset) {
        return field(offset, 4);
    }

    public Field u64(int offset) {
        return field(offset, 8);
    }

    /** A field of {@code length} bytes (a string, a bitmap, a union). */
    public Field bytes(int offset, int length) {
        return field(offset, length);
    }

    private synchronized Field field(int offset, int width) {
        if (offset < 0 || width <= 0 || offset + width > bytes.length) {
            throw new IllegalArgumentException("a field of " + width + " bytes at " + offset + " is outside the " + bytes.length + "-byte space");
        }
        for (Field f : fields) {
            if (offset < f.offset + f.width && f.offset < offset + width) {
                throw new IllegalArgumentException("a field at " + offset + " overlaps the one at " + f.offset);
            }
        }
        Field f = new Field(offset, width);
        int at = 0;
        while (at < fields.size() && fields.get(at).offset < offset) {
            at++;
        }
        fields.add(at, f);
        return f;
    }

    /** Bytes of the space. */
    public int size() {
        return bytes.length;
    }

    /** {@code length} bytes at {@code offset}, as the driver reads them (the transport checked the range). */
    public synchronized byte[] read(int offset, int length) {
        return Arrays.copyOfRange(bytes, offset, offset + length);
    }

    /**
     * A driver's write of {@code data} at {@code offset} (the transport checked the range): the
     * bytes of writable fields change, the rest is ignored; then the listener of every writable
     * field the write touched runs.
     */
    public void write(int offset, byte[] data) {
        List<Field> touched = new ArrayList<>();
        List<Long> values = new ArrayList<>();
        synchronized (this) {
            for (Field f : fields) {
                if (!f.writable || f.offset >= offset + data.length || offset >= f.offset + f.width) {
                    continue;
                }
                int from = Math.max(f.offset, offset);
                int to = Math.min(f.offset + f.width, offset + data.length);
                System.arraycopy(data, from - offset, bytes, from, to - from);
                touched.add(f);
            }
            for (Field f : touched) {
                values.add(f.get());
            }
        }
        for (int i = 0; i < touched.size(); i++) {
            touched.get(i).onWrite.accept(values.get(i));
        }
    }

    /** Moves whenever the device changed a field. */
    public int generation() {
        return generation.get();
    }
}
