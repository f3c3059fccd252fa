package org.jvirtio.transport.vhostuser;

import org.junit.jupiter.api.Test;
import org.jvirtio.api.linux.Libc;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

/** The backend request channel over a real socket pair, the front-end's end played by the test. */
class BackendChannelTest {
    private static VhostUserMessage readRequest(MessageReader r) throws Exception {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < deadline) {
            if (r.read() == MessageReader.Status.MESSAGE) {
                return r.message();
            }
            Thread.sleep(5);
        }
        throw new AssertionError("no request on the backend channel");
    }

    private static void reply(int fd) throws Exception {
        UnixSocket.send(fd, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION | FLAG_REPLY, VhostUserMessage.u64(0)), new int[0]);
    }

    /**
     * Issue 14, item 8 (failed before: a reply that came after its 5 s deadline stayed in the
     * socket, and the next CONFIG_CHANGE_MSG took it for its own reply): late replies are dropped
     * before the next request, which waits for its own.
     */
    @Test
    void aLateReplyIsNeverTakenForTheReplyToALaterRequest() throws Exception {
        int[] pair = UnixSocket.socketPair();
        BackendChannel channel = new BackendChannel(200);
        channel.set(pair[0]);
        try (MessageReader frontend = new MessageReader(pair[1], true)) {
            // 1. The front-end reads the request and answers too late.
            long t0 = System.nanoTime();
            channel.configChanged(true);
            assertTrue(System.nanoTime() - t0 >= 150_000_000L, "waited for the reply until the deadline");
            VhostUserMessage first = readRequest(frontend);
            assertEquals(BACKEND_CONFIG_CHANGE_MSG, first.request());
            assertTrue(first.needsReply());
            reply(pair[1]); // late
            // 2. The next request must wait for its own reply, given 150 ms after it arrived.
            Thread answerer = Thread.ofPlatform().start(() -> {
                try {
                    readRequest(frontend);
                    Thread.sleep(150);
                    reply(pair[1]);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            long t1 = System.nanoTime();
            channel.configChanged(true);
            long waited = System.nanoTime() - t1;
            answerer.join(5000);
            assertTrue(waited >= 100_000_000L, "took the late reply for its own: returned after " + waited / 1_000_000 + " ms");
        } finally {
            channel.close();
            Libc.closeQuietly(pair[1]);
        }
    }
}
