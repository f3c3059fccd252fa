package org.jvirtio.api;

/** A device read or wrote past the end of a chain's readable or writable buffers. */
public final class ChainUnderflowException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ChainUnderflowException(String what, long wanted, long remaining) {
        super(what + ": needed " + wanted + " bytes, chain has " + remaining + " left");
    }
}
