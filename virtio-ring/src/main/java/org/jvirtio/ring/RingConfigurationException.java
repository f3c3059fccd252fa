package org.jvirtio.ring;

/** A queue configuration (size, ring addresses) was refused; carries the violation. */
public final class RingConfigurationException extends Exception {
    private static final long serialVersionUID = 1L;

    private final transient RingViolation violation;

    public RingConfigurationException(RingViolation violation) {
        super(violation.message());
        this.violation = violation;
    }

    /** The violation, told with {@code message} (what the transport knows of where it came from). */
    public RingConfigurationException(RingViolation violation, String message) {
        super(message);
        this.violation = violation;
    }

    public RingViolation violation() {
        return violation;
    }
}
