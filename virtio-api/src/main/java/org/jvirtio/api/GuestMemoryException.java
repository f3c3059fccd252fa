package org.jvirtio.api;

/** A guest-physical (or frontend user) address range is not inside the guest's memory. */
public final class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final long address;
    private final long length;

    public GuestMemoryException(String what, long address, long length) {
        super(what + ": [0x" + Long.toHexString(address) + ", +" + Long.toUnsignedString(length) + ") is not in guest memory");
        this.address = address;
        this.length = length;
    }

    public long address() {
        return address;
    }

    public long length() {
        return length;
    }
}
