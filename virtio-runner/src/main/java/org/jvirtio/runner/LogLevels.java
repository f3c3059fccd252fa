package org.jvirtio.runner;

import java.util.Locale;
import java.util.Set;

import org.slf4j.ILoggerFactory;
import org.slf4j.LoggerFactory;

/**
 * Changing a logger's level while the process runs ({@code ctl log-level debug}). SLF4J has no
 * API for it, so this speaks to the binding: logback (what the backends ship with), if it is the
 * one in use; any other binding is refused with a line saying so.
 */
final class LogLevels {
    private static final Set<String> LEVELS = Set.of("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF");

    private LogLevels() {
    }

    /**
     * Sets {@code logger}'s level (and its descendants' that have none of their own).
     *
     * @param logger a logger name ({@code org.jvirtio}, {@code ROOT})
     * @param level TRACE, DEBUG, INFO, WARN, ERROR or OFF, in any case
     * @return the level set, upper case
     * @throws IllegalArgumentException for an unknown level or logger name, or a binding that cannot be told
     */
    static String set(String logger, String level) {
        String upper = level.toUpperCase(Locale.ROOT);
        if (!LEVELS.contains(upper)) {
            throw new IllegalArgumentException("level '" + DeviceSet.shorten(level) + "': use one of trace, debug, info, warn, error, off");
        }
        if (logger.isEmpty() || logger.length() > 256 || !logger.matches("[A-Za-z0-9_.$]+")) {
            throw new IllegalArgumentException("logger '" + DeviceSet.shorten(logger) + "' is not a logger name (e.g. org.jvirtio, ROOT)");
        }
        ILoggerFactory factory = LoggerFactory.getILoggerFactory();
        try {
            if (factory instanceof ch.qos.logback.classic.LoggerContext context) {
                context.getLogger(logger).setLevel(ch.qos.logback.classic.Level.toLevel(upper));
                return upper;
            }
        } catch (NoClassDefFoundError e) {
            // logback is not on the class path: some other binding
        }
        throw new IllegalArgumentException("the logging in use (" + factory.getClass().getName() + ") cannot change levels while running");
    }
}
