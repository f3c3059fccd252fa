package org.jvirtio.testkit;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link Await#listening}: true for a socket that listens (under the name it was bound to, or
 * renamed into place after it listened, as jvirtio's backend does), false for one that is only
 * bound (its file exists, a connect to it is refused: the moment qemu-storage-daemon is in
 * between its bind and its listen), for a plain file, and for nothing at all.
 */
class AwaitTest {
    @TempDir
    Path dir;

    @Test
    void listeningIsTrueOnlyForASocketThatListens() throws Exception {
        Path bound = dir.resolve("bound.sock");
        Path listens = dir.resolve("listens.sock");
        Path file = dir.resolve("file.sock");
        Path renamed = dir.resolve("renamed.sock");
        Files.writeString(file, "");
        try (SocketChannel b = SocketChannel.open(StandardProtocolFamily.UNIX);
             ServerSocketChannel l = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
             ServerSocketChannel r = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            b.bind(UnixDomainSocketAddress.of(bound));
            l.bind(UnixDomainSocketAddress.of(listens));
            assertTrue(Files.exists(bound), "the bound socket has its file");
            assertFalse(Await.listening(bound), "bound, not listening");
            assertTrue(Await.listening(listens));
            assertFalse(Await.listening(file));
            assertFalse(Await.listening(dir.resolve("none.sock")));
            r.bind(UnixDomainSocketAddress.of(dir.resolve("tmp-renamed.sock")));
            Files.move(dir.resolve("tmp-renamed.sock"), renamed);
            assertTrue(Await.listening(renamed), "listening, renamed into place");
        }
    }
}
