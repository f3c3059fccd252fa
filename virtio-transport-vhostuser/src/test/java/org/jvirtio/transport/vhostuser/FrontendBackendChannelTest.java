package org.jvirtio.transport.vhostuser;

import java.nio.ByteBuffer;
import org.jvirtio.api.linux.Libc;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

import org.jvirtio.api.EventFd;
import org.jvirtio.testkit.OpenFds;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.jvirtio.transport.vhostuser.VhostUserProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The front-end's end of the backend request channel (what the MMIO proxy serves) against a
 * hostile backend, played by the test: requests it does not serve are answered with failure,
 * fds sent along are closed, a failing listener is answered with failure and the channel goes
 * on, and a message announcing more than any message carries ends the channel alone; the
 * front-end's own connection is unharmed and nothing is left open.
 */
class FrontendBackendChannelTest {
    @TempDir
    Path dir;

    /** The next message; the reader may be non-blocking (an accepted socket is), so AGAIN waits a little. */
    private static VhostUserMessage read(MessageReader r) throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        MessageReader.Status s;
        while ((s = r.read()) == MessageReader.Status.AGAIN && System.nanoTime() - deadline < 0) {
            Thread.sleep(1);
        }
        assertEquals(MessageReader.Status.MESSAGE, s);
        return r.message();
    }

    private static long status(VhostUserMessage reply, int request) {
        assertEquals(request, reply.request());
        assertTrue(reply.isReply());
        return ByteBuffer.wrap(reply.payload()).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @Test
    void aHostileBackendOnTheChannelGetsFailuresAndCannotHarmTheFrontend() throws Exception {
        Path socket = dir.resolve("fake.sock");
        int listen = UnixSocket.listen(socket, 1);
        long fdsBefore = OpenFds.count();
        AtomicInteger heard = new AtomicInteger();
        int channel;
        VhostUserFrontend fe = VhostUserFrontend.connect(socket);
        int conn = UnixSocket.accept(listen);
        try (MessageReader main = new MessageReader(conn, true)) { // accept() gives a non-blocking socket
            fe.openBackendChannel(() -> {
                if (heard.incrementAndGet() == 2) {
                    throw new IllegalStateException("a listener that fails");
                }
            });
            VhostUserMessage set = read(main);
            assertEquals(VhostUserRequest.SET_BACKEND_REQ_FD.code(), set.request());
            assertEquals(1, set.fds().length);
            channel = set.fds()[0];
            try (MessageReader replies = new MessageReader(channel, false)) {
                // A request the front-end does not serve: failure, and the channel goes on.
                UnixSocket.send(channel, VhostUserMessage.encode(99, VERSION | FLAG_NEED_REPLY, new byte[0]), new int[0]);
                assertEquals(1, status(read(replies), 99));
                assertEquals(0, heard.get());
                // CONFIG_CHANGE_MSG carrying an fd it has no use for: heard, acknowledged, the fd closed.
                try (EventFd extra = EventFd.create(true)) {
                    UnixSocket.send(channel, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION | FLAG_NEED_REPLY, new byte[0]),
                            new int[] {extra.fd()});
                }
                assertEquals(0, status(read(replies), BACKEND_CONFIG_CHANGE_MSG));
                assertEquals(1, heard.get());
                // The listener fails: failure, and the channel still serves the next one.
                UnixSocket.send(channel, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION | FLAG_NEED_REPLY, new byte[0]), new int[0]);
                assertEquals(1, status(read(replies), BACKEND_CONFIG_CHANGE_MSG));
                UnixSocket.send(channel, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION | FLAG_NEED_REPLY, new byte[0]), new int[0]);
                assertEquals(0, status(read(replies), BACKEND_CONFIG_CHANGE_MSG));
                assertEquals(3, fe.configChanges());
                // A header announcing more than any message carries: the front-end stops serving
                // the channel (and closes nothing it still needs).
                byte[] huge = VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION, new byte[0]);
                ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putInt(8, 0x7fff_ffff);
                UnixSocket.send(channel, huge, new int[0]);
                UnixSocket.send(channel, VhostUserMessage.encode(BACKEND_CONFIG_CHANGE_MSG, VERSION | FLAG_NEED_REPLY, new byte[0]), new int[0]);
                Thread.sleep(200);
                assertEquals(3, fe.configChanges(), "nothing served after the bad header");
                // The front-end's own connection is unharmed: it still sends and gets its reply.
                Thread backend = Thread.ofPlatform().start(() -> {
                    try {
                        VhostUserMessage q = read(main);
                        UnixSocket.send(conn, VhostUserMessage.encode(q.request(), VERSION | FLAG_REPLY, VhostUserMessage.u64(2)), new int[0]);
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
                assertEquals(2, fe.getQueueNum());
                backend.join(5000);
            }
            Libc.closeQuietly(channel);
        } finally {
            fe.close();
            Libc.closeQuietly(conn);
        }
        Libc.closeQuietly(listen);
        assertEquals(fdsBefore - 1, OpenFds.count(), "nothing left open (the listening socket was open before)");
    }
}
