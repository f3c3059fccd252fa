package org.jvirtio.examples.logging;

import java.time.Instant;
import java.time.LocalTime;
import java.time.ZoneId;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.CoreConstants;
import ch.qos.logback.core.LayoutBase;

/**
 * {@code HH:mm:ss.SSS LEVEL [thread] Logger: message}, then the stack trace if the event has one:
 * what the pattern {@code %d{HH:mm:ss.SSS} %-5level [%thread] %logger{0}: %msg%n} printed, without
 * the pattern machinery. Stateless, so safe from any thread.
 */
final class LineLayout extends LayoutBase<ILoggingEvent> {
    /** Looked up with the first line (reading the time-zone database is a few ms of a backend's start). */
    private volatile ZoneId zone;

    @Override
    public String doLayout(ILoggingEvent event) {
        StringBuilder b = new StringBuilder(128);
        ZoneId z = zone;
        if (z == null) {
            z = ZoneId.systemDefault();
            zone = z;
        }
        LocalTime t = LocalTime.ofInstant(Instant.ofEpochMilli(event.getTimeStamp()), z);
        two(b, t.getHour()).append(':');
        two(b, t.getMinute()).append(':');
        two(b, t.getSecond()).append('.');
        int ms = t.getNano() / 1_000_000;
        b.append((char) ('0' + ms / 100)).append((char) ('0' + ms / 10 % 10)).append((char) ('0' + ms % 10)).append(' ');
        String level = event.getLevel().toString();
        b.append(level);
        for (int i = level.length(); i < 5; i++) {
            b.append(' ');
        }
        b.append(" [").append(event.getThreadName()).append("] ");
        String logger = event.getLoggerName();
        b.append(logger, logger.lastIndexOf('.') + 1, logger.length()).append(": ");
        b.append(event.getFormattedMessage()).append(CoreConstants.LINE_SEPARATOR);
        IThrowableProxy thrown = event.getThrowableProxy();
        if (thrown != null) {
            b.append(ThrowableProxyUtil.asString(thrown));
        }
        return b.toString();
    }

    private static StringBuilder two(StringBuilder b, int v) {
        return b.append((char) ('0' + v / 10)).append((char) ('0' + v % 10));
    }
}
