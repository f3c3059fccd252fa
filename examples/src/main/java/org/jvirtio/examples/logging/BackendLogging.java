package org.jvirtio.examples.logging;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.encoder.LayoutWrappingEncoder;
import ch.qos.logback.core.spi.ContextAwareBase;
import org.slf4j.Logger;

/**
 * The backends' logging, set up in code instead of by a {@code logback.xml}: one line per event
 * on stderr, {@code HH:mm:ss.SSS LEVEL [thread] Logger: message}, INFO and up, and
 * {@code org.jvirtio} at the level {@code -Djvirtio.log=DEBUG} names (DEBUG logs every vhost-user
 * message). Parsing an XML configuration (Joran, a SAX parser, pattern-layout tables) took about a
 * sixth of a backend's start on one CPU (issue 13); this takes a few objects.
 *
 * <p>logback finds this through {@code ServiceLoader} ahead of its own configurators. With
 * {@code -Dlogback.configurationFile=FILE} it steps aside and logback reads FILE as usual.
 */
@ConfiguratorRank(ConfiguratorRank.CUSTOM_NORMAL_PRIORITY)
public final class BackendLogging extends ContextAwareBase implements Configurator {
    /** The system property naming the level of jvirtio's own loggers. */
    public static final String LEVEL_PROPERTY = "jvirtio.log";

    public BackendLogging() {
    }

    @Override
    public ExecutionStatus configure(LoggerContext context) {
        if (System.getProperty("logback.configurationFile") != null) {
            return ExecutionStatus.INVOKE_NEXT_IF_ANY;
        }
        LineLayout layout = new LineLayout();
        layout.setContext(context);
        layout.start();
        LayoutWrappingEncoder<ILoggingEvent> encoder = new LayoutWrappingEncoder<>();
        encoder.setContext(context);
        encoder.setLayout(layout);
        encoder.start();
        ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
        stderr.setContext(context);
        stderr.setName("STDERR");
        stderr.setTarget("System.err");
        stderr.setEncoder(encoder);
        stderr.start();
        ch.qos.logback.classic.Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
        root.setLevel(Level.INFO);
        root.addAppender(stderr);
        String level = System.getProperty(LEVEL_PROPERTY);
        context.getLogger("org.jvirtio").setLevel(level == null ? Level.INFO : Level.toLevel(level, Level.INFO));
        return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
    }
}
