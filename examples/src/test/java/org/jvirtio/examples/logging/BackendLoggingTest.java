package org.jvirtio.examples.logging;

import java.time.LocalTime;
import java.time.ZoneId;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.Configurator.ExecutionStatus;
import ch.qos.logback.classic.spi.LoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BackendLoggingTest {
    @Test
    void linesLookAsThePatternMadeThem() {
        LoggerContext context = new LoggerContext();
        LineLayout layout = new LineLayout();
        layout.setContext(context);
        layout.start();
        Logger logger = context.getLogger("org.jvirtio.transport.vhostuser.BackendSession");
        long ts = LocalTime.of(9, 5, 7, 42_000_000).atDate(java.time.LocalDate.of(2026, 12, 2)).atZone(ZoneId.systemDefault()).toInstant().toEpochMilli();
        LoggingEvent e = new LoggingEvent("fqcn", logger, Level.WARN, "refused {} ({} bytes)", null, new Object[] {"SET_MEM_TABLE", 40});
        e.setTimeStamp(ts);
        e.setThreadName("vhost-user");
        assertEquals("09:05:07.042 WARN  [vhost-user] BackendSession: refused SET_MEM_TABLE (40 bytes)" + System.lineSeparator(), layout.doLayout(e));

        LoggingEvent thrown = new LoggingEvent("fqcn", logger, Level.ERROR, "queue 0 broke", new IllegalStateException("bad ring"), null);
        thrown.setTimeStamp(ts);
        thrown.setThreadName("q0");
        String line = layout.doLayout(thrown);
        assertTrue(line.startsWith("09:05:07.042 ERROR [q0] BackendSession: queue 0 broke" + System.lineSeparator()
                + "java.lang.IllegalStateException: bad ring"), line);
        assertTrue(line.contains("at org.jvirtio.examples.logging.BackendLoggingTest"), line);
    }

    @Test
    void configuresStderrAndTheJvirtioLevel() {
        String before = System.getProperty(BackendLogging.LEVEL_PROPERTY);
        String file = System.clearProperty("logback.configurationFile");
        try {
            System.setProperty(BackendLogging.LEVEL_PROPERTY, "debug");
            LoggerContext context = new LoggerContext();
            assertEquals(ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY, configured(context).configure(context));
            Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
            assertEquals(Level.INFO, root.getLevel());
            ConsoleAppender<?> stderr = assertInstanceOf(ConsoleAppender.class, root.getAppender("STDERR"));
            assertEquals("System.err", stderr.getTarget());
            assertTrue(stderr.isStarted());
            assertEquals(Level.DEBUG, context.getLogger("org.jvirtio").getLevel());
            assertTrue(context.getLogger("org.jvirtio.ring.SplitQueue").isDebugEnabled());
            assertTrue(!context.getLogger("io.netty.channel").isDebugEnabled());

            System.setProperty(BackendLogging.LEVEL_PROPERTY, "nonsense");
            LoggerContext other = new LoggerContext();
            configured(other).configure(other);
            assertEquals(Level.INFO, other.getLogger("org.jvirtio").getLevel(), "an unknown level falls back to INFO");

            System.setProperty("logback.configurationFile", "/some/where.xml");
            LoggerContext third = new LoggerContext();
            assertEquals(ExecutionStatus.INVOKE_NEXT_IF_ANY, configured(third).configure(third), "a named file is logback's to read");
            assertEquals(null, third.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME).getAppender("STDERR"));
        } finally {
            restore(BackendLogging.LEVEL_PROPERTY, before);
            restore("logback.configurationFile", file);
        }
    }

    /** What logback does: a new configurator per context, given the context first. */
    private static BackendLogging configured(LoggerContext context) {
        BackendLogging config = new BackendLogging();
        config.setContext(context);
        return config;
    }

    private static void restore(String key, String value) {
        if (value == null) {
            System.clearProperty(key);
        } else {
            System.setProperty(key, value);
        }
    }
}
