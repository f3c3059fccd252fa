package org.jvirtio.transport.vhostuser;

/**
 * A queue the device could not start (its {@code openQueue} or handler's {@code open} failed, its
 * thread or I/O could not be set up): the connection is closed with this as the reason, since
 * vhost-user has no way to tell the front-end that one ring will not be served. Not a protocol
 * error and not a bug of the transport: the message names the queue and the device's reason.
 */
final class QueueStartException extends RuntimeException {
    QueueStartException(int queue, RuntimeException cause) {
        super("queue " + queue + " could not start: " + reason(cause), cause);
    }

    /** The innermost cause's message: the device's or the kernel's words, not the layers' between. */
    private static String reason(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getMessage() != null ? root.getMessage() : root.toString();
    }
}
