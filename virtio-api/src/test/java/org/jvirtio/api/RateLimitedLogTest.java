package org.jvirtio.api;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

import static org.junit.jupiter.api.Assertions.*;

class RateLimitedLogTest {
    @Test
    void aBurstGoesOutTheRestIsCountedAndReportedWithTheNextLine() throws Exception {
        Logger logger = (Logger) LoggerFactory.getLogger("org.jvirtio.test.ratelimit");
        ListAppender<ILoggingEvent> lines = new ListAppender<>();
        lines.start();
        logger.addAppender(lines);
        try {
            RateLimitedLog log = new RateLimitedLog(logger, 3, 200_000_000L);
            for (int i = 0; i < 1000; i++) {
                log.warn("mistake {}", i);
            }
            assertEquals(3, lines.list.size(), "a burst of three");
            assertEquals("mistake 0", lines.list.get(0).getFormattedMessage());
            assertEquals(997, log.suppressed());
            Thread.sleep(250);
            log.warn("mistake {}", "late");
            assertEquals(4, lines.list.size());
            assertEquals("mistake late (997 similar lines left out)", lines.list.get(3).getFormattedMessage());
            assertEquals(0, log.suppressed());
        } finally {
            logger.detachAppender(lines);
        }
        assertThrows(IllegalArgumentException.class, () -> new RateLimitedLog(logger, 0, 1));
    }
}
