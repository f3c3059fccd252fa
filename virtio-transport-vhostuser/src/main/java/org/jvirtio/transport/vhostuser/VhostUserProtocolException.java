package org.jvirtio.transport.vhostuser;

/**
 * A front-end sent something the protocol forbids or jvirtio refuses. The backend closes the
 * connection with one log line carrying {@link #getMessage()} and keeps listening.
 */
public final class VhostUserProtocolException extends Exception {
    private static final long serialVersionUID = 1L;

    public VhostUserProtocolException(String message) {
        super(message);
    }
}
