package org.jvirtio.transport.vhostuser;

import java.nio.file.Path;

import org.jvirtio.host.QueueHost;
import org.jvirtio.testkit.EchoDevice;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The hostile front-end ({@link HostileFrontendFuzz}) against the test kit's echo device, and
 * against one whose queues rest and resume all the time (every other chain turned away and woken
 * at once). virtio-blk-dataplane runs it against the blk device on io_uring.
 */
class MessageFuzzTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"echo", "resting-echo"})
    void randomSessionsNeverHangLeakOrStopTheBackend(String kind) throws Exception {
        EchoDevice echo = new EchoDevice(HostileFrontendFuzz.QUEUES);
        if (kind.equals("resting-echo")) {
            echo.resting();
        }
        HostileFrontendFuzz.run(kind, dir, echo, QueueHost.THREAD_PER_QUEUE, new HostileFrontendFuzz.Served() {
            @Override
            public String describe() {
                return echo.starts.get() + " rings started, " + echo.turnedAway.get() + " chains turned away";
            }

            @Override
            public void check(int sessions) {
                assertTrue(echo.starts.get() > sessions / 20, "rings started: " + echo.starts.get());
                if (kind.equals("resting-echo")) {
                    assertTrue(echo.turnedAway.get() > sessions / 20, "chains turned away (queues resting): " + echo.turnedAway.get());
                }
            }
        });
    }
}
