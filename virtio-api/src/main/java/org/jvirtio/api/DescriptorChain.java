package org.jvirtio.api;

import java.lang.foreign.MemorySegment;

/**
 * One descriptor chain popped from a virtqueue: its head id and its buffers, the
 * device-readable ones first, then the device-writable ones (VIRTIO 1.3, 2.7.4.2 forbids the
 * other order). Buffers are already translated and validated: each is a range inside one
 * guest memory region, so a descriptor that crossed a region boundary appears as two buffers.
 *
 * <p>Instances are owned and reused by their queue (no allocation per chain). A chain is valid
 * from the pop that returned it until the device hands it back with
 * {@link Virtqueue#addUsed(DescriptorChain, int)}; the device must not keep it afterwards.
 *
 * <p>Devices parse a chain through {@link #reader()} and {@link #writer()}, which read and write
 * little-endian fields across buffer boundaries: any descriptor layout is legal (VIRTIO 1.3,
 * 2.7.4.4), a 16-byte request header may come in 16 one-byte descriptors.
 *
 * <p>To a device a chain is read-only: only a queue implementation (a subclass, in the ring
 * module) fills it in, through the protected {@link #reset} and {@link #append}. Every other
 * method is final.
 */
public abstract class DescriptorChain {
    private static final int INITIAL_CAPACITY = 8;

    private final int owner;
    private int head;
    private int count;
    private int readableCount;
    private long readableBytes;
    private long writableBytes;
    private GuestMemory memory = GuestMemory.empty();
    /** Region index per buffer (ints, not segment references: no GC barrier per buffer). */
    private int[] regions = new int[INITIAL_CAPACITY];
    private long[] offsets = new long[INITIAL_CAPACITY];
    private int[] lengths = new int[INITIAL_CAPACITY];
    private final ChainReader reader = new ChainReader(this);
    private final ChainWriter writer = new ChainWriter(this);

    /** @param owner an identifier of the owning queue, for assertions and messages */
    protected DescriptorChain(int owner) {
        this.owner = owner;
    }

    // ---- filled in by the queue implementation ----

    /**
     * Starts a new chain with head {@code head} over {@code memory}, dropping all buffers. For
     * queue implementations.
     */
    protected final void reset(GuestMemory memory, int head) {
        this.memory = memory;
        this.head = head;
        this.count = 0;
        this.readableCount = 0;
        this.readableBytes = 0;
        this.writableBytes = 0;
    }

    /**
     * Sets the chain's id once it is known: a packed ring's buffer id comes with the chain's last
     * descriptor. For queue implementations.
     */
    protected final void setHead(int head) {
        this.head = head;
    }

    /**
     * Appends a buffer: {@code length} bytes at {@code offset} in region {@code region} of the
     * chain's memory. Readable buffers must all come before writable ones; the queue
     * implementation checks that before calling. For queue implementations.
     */
    protected final void append(int region, long offset, int length, boolean writable) {
        if (count == regions.length) {
            grow();
        }
        regions[count] = region;
        offsets[count] = offset;
        lengths[count] = length;
        count++;
        if (writable) {
            writableBytes += Integer.toUnsignedLong(length);
        } else {
            readableCount++;
            readableBytes += Integer.toUnsignedLong(length);
        }
    }

    /** Buffers the chain can hold before its arrays grow. For queue implementations (memory accounting). */
    protected final int capacity() {
        return regions.length;
    }

    /**
     * Gives back arrays grown past the initial capacity (the chain holds no buffers afterwards);
     * returns how many entries of capacity that freed. For queue implementations that bound what
     * their pool keeps.
     */
    protected final int trim() {
        int freed = regions.length - INITIAL_CAPACITY;
        if (freed > 0) {
            regions = new int[INITIAL_CAPACITY];
            offsets = new long[INITIAL_CAPACITY];
            lengths = new int[INITIAL_CAPACITY];
        }
        count = 0;
        readableCount = 0;
        readableBytes = 0;
        writableBytes = 0;
        return Math.max(0, freed);
    }

    private void grow() {
        int n = regions.length * 2;
        regions = java.util.Arrays.copyOf(regions, n);
        offsets = java.util.Arrays.copyOf(offsets, n);
        lengths = java.util.Arrays.copyOf(lengths, n);
    }

    // ---- read by devices ----

    /** The head descriptor id (a packed ring's buffer id): what goes into the used ring. */
    public final int head() {
        return head;
    }

    /** Identifier of the owning queue. */
    public final int owner() {
        return owner;
    }

    /** Number of buffers (readable + writable). */
    public final int bufferCount() {
        return count;
    }

    public final int readableBufferCount() {
        return readableCount;
    }

    public final int writableBufferCount() {
        return count - readableCount;
    }

    /** Total bytes the device may read. */
    public final long readableLength() {
        return readableBytes;
    }

    /** Total bytes the device may write. */
    public final long writableLength() {
        return writableBytes;
    }

    /** Whether buffer {@code i} is device-writable (true for every {@code i >= readableBufferCount()}). */
    public final boolean isWritable(int i) {
        checkIndex(i);
        return i >= readableCount;
    }

    /** The guest memory the buffers are in (valid while the chain is in flight). */
    public final GuestMemory memory() {
        return memory;
    }

    /** The whole region segment holding buffer {@code i} (no allocation). */
    public final MemorySegment bufferRegion(int i) {
        checkIndex(i);
        return memory.regionSegment(regions[i]);
    }

    /** Offset of buffer {@code i} inside {@link #bufferRegion(int)}. */
    public final long bufferOffset(int i) {
        checkIndex(i);
        return offsets[i];
    }

    /** Length of buffer {@code i} in bytes (as an unsigned 32-bit value in an int). */
    public final int bufferLength(int i) {
        checkIndex(i);
        return lengths[i];
    }

    /** Host address of buffer {@code i}, for iovecs handed to the kernel (zero copy). */
    public final long bufferAddress(int i) {
        checkIndex(i);
        return memory.regionSegment(regions[i]).address() + offsets[i];
    }

    /** Guest physical address of buffer {@code i} (for the dirty log). */
    public final long bufferGuestAddress(int i) {
        checkIndex(i);
        return memory.regionStart(regions[i]) + offsets[i];
    }

    /** Buffer {@code i} as its own segment (allocates a slice; for tests and slow paths). */
    public final MemorySegment buffer(int i) {
        checkIndex(i);
        return memory.regionSegment(regions[i]).asSlice(offsets[i], Integer.toUnsignedLong(lengths[i]));
    }

    /** A cursor over the readable buffers, at position 0. The same object every call. */
    public final ChainReader reader() {
        reader.rewind();
        return reader;
    }

    /** A cursor over the writable buffers, at position 0. The same object every call. */
    public final ChainWriter writer() {
        writer.rewind();
        return writer;
    }

    private void checkIndex(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("buffer " + i + " of " + count);
        }
    }

    // raw access for the cursors (same package, no checks beyond the cursor's own)
    MemorySegment segmentAt(int i) {
        return memory.regionSegment(regions[i]);
    }

    long offsetAt(int i) {
        return offsets[i];
    }

    long lengthAt(int i) {
        return Integer.toUnsignedLong(lengths[i]);
    }

    @Override
    public String toString() {
        return "DescriptorChain[head=" + head + ", readable=" + readableCount + " bufs/" + readableBytes
                + " B, writable=" + (count - readableCount) + " bufs/" + writableBytes + " B]";
    }
}
