package org.jvirtio.transport.vhostuser;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import org.jvirtio.transport.vhostuser.FrontendRequest.AddMemReg;
import org.jvirtio.transport.vhostuser.FrontendRequest.GetConfig;
import org.jvirtio.transport.vhostuser.FrontendRequest.SetConfig;
import org.jvirtio.transport.vhostuser.FrontendRequest.SetMemTable;
import org.jvirtio.transport.vhostuser.FrontendRequest.SetVringFd;
import org.jvirtio.transport.vhostuser.VhostUserCodec.MemRegion;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Coverage-guided fuzzing of the vhost-user decoder (issue 14): a message's request code
 * (mostly known ones), flags, payload bytes and fd count come from the input. Decoding either
 * yields a typed request whose values respect the protocol's limits, or refuses the message with
 * a {@link VhostUserProtocolException}; nothing else leaves it (no index, arithmetic or
 * allocation failure), whatever the sizes and counts say. The fd numbers are placeholders:
 * decoding takes no fd.
 *
 * <p>Plain {@code verify} runs the committed inputs under {@code MessageDecodeFuzzTestInputs};
 * {@code JAZZER_FUZZ=1} fuzzes (bench/fuzz.sh).
 */
class MessageDecodeFuzzTest {
    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void decodingAnyMessageRefusesOrYieldsValidValues(FuzzedDataProvider data) {
        int request = data.consumeInt(0, 15) == 0 ? data.consumeInt() : data.consumeInt(0, 45);
        int flags = data.consumeInt(0, 7) == 0 ? data.consumeInt() : VhostUserProtocol.VERSION | (data.consumeBoolean() ? 0x8 : 0);
        int[] fds = new int[data.consumeInt(0, MessageReader.MAX_MESSAGE_FDS)];
        for (int i = 0; i < fds.length; i++) {
            fds[i] = 1000 + i;
        }
        byte[] payload = data.consumeRemainingAsBytes();
        VhostUserMessage m = new VhostUserMessage(request, flags, payload, fds);
        FrontendRequest r;
        try {
            r = VhostUserCodec.decode(m);
        } catch (VhostUserProtocolException e) {
            assertNotNull(e.getMessage());
            return;
        }
        switch (r) {
            case SetMemTable t -> {
                assertTrue(t.regions().size() <= VhostUserProtocol.MAX_TABLE_REGIONS, "regions " + t.regions().size());
                assertEquals(t.regions().size(), fds.length, "one fd per region");
                for (MemRegion g : t.regions()) {
                    assertNotNull(g);
                }
            }
            case AddMemReg a -> assertEquals(1, fds.length);
            case SetVringFd f -> assertTrue(fds.length <= 1, "fds " + fds.length);
            case GetConfig g -> assertTrue(g.config().size() <= VhostUserProtocol.MAX_CONFIG_SIZE, "size " + g.config().size());
            case SetConfig s -> assertEquals(s.config().size(), s.config().data().length);
            default -> {
            }
        }
    }
}
