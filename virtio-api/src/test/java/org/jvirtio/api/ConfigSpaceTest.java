package org.jvirtio.api;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The config-space layout helper: fields little-endian, writes reach writable fields only, listeners after the whole write. */
class ConfigSpaceTest {
    @Test
    void fieldsAreLittleEndianAndADeviceSideChangeMovesTheGeneration() {
        ConfigSpace c = new ConfigSpace(24);
        ConfigSpace.Field capacity = c.u64(0);
        ConfigSpace.Field segMax = c.u32(12);
        ConfigSpace.Field name = c.bytes(16, 8);
        int g = c.generation();
        capacity.set(0x0102030405060708L);
        assertArrayEquals(new byte[] {8, 7, 6, 5, 4, 3, 2, 1}, c.read(0, 8));
        assertEquals(0x0102030405060708L, capacity.get());
        assertNotEquals(g, c.generation());
        int g2 = c.generation();
        capacity.set(0x0102030405060708L);
        assertEquals(g2, c.generation(), "the same value again: no change");
        segMax.set(126);
        name.set("abc".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        assertArrayEquals(new byte[] {0, 0, 0, 0, 126, 0, 0, 0, 'a', 'b', 'c', 0}, c.read(8, 12));
        assertThrows(IllegalArgumentException.class, () -> name.set(new byte[9]));
        ConfigSpace.Field wide = new ConfigSpace(16).bytes(0, 16);
        assertThrows(IllegalStateException.class, () -> wide.set(1), "a field wider than 8 bytes takes bytes");
    }

    @Test
    void aWholeSpaceRewriteChangesOnlyWritableFieldsAndTheListenersRunAfterIt() {
        ConfigSpace c = new ConfigSpace(16);
        List<String> heard = new ArrayList<>();
        ConfigSpace.Field select = c.u8(0);
        ConfigSpace.Field subsel = c.u8(1);
        ConfigSpace.Field size = c.u8(2);
        ConfigSpace.Field union = c.bytes(8, 8);
        select.writable(v -> heard.add("select " + v + " subsel " + subsel.get()));
        subsel.writable(v -> heard.add("subsel " + v));
        size.set(5);
        union.set(new byte[] {9, 9});
        int g = c.generation();
        // QEMU's front-end: the whole space, as it read it, with select and subsel changed.
        byte[] all = c.read(0, 16);
        all[0] = 0x11;
        all[1] = 1;
        all[2] = 77;     // read-only: ignored
        all[9] = 42;     // read-only: ignored
        c.write(0, all);
        assertEquals(0x11, select.get());
        assertEquals(1, subsel.get());
        assertEquals(5, size.get());
        assertArrayEquals(new byte[] {9, 9, 0, 0, 0, 0, 0, 0}, union.bytes());
        assertEquals(List.of("select 17 subsel 1", "subsel 1"), heard, "both written before either listener ran");
        assertEquals(g, c.generation(), "a driver's write does not move the generation");
        heard.clear();
        c.write(1, new byte[] {2});
        assertEquals(List.of("subsel 2"), heard, "a write of one byte touches one field");
        c.write(3, new byte[] {1, 2, 3});
        assertEquals(List.of("subsel 2"), heard, "bytes of no field: nothing");
    }

    @Test
    void badLayoutsAreRefused() {
        ConfigSpace c = new ConfigSpace(8);
        c.u32(0);
        assertThrows(IllegalArgumentException.class, () -> c.u16(2), "overlap");
        assertThrows(IllegalArgumentException.class, () -> c.u64(4), "past the end");
        assertThrows(IllegalArgumentException.class, () -> new ConfigSpace(-1));
    }

    @Test
    void aDeviceWithAConfigSpaceServesItThroughTheSpi() {
        ConfigSpace c = new ConfigSpace(8);
        ConfigSpace.Field f = c.u32(4).writable();
        AbstractVirtioDevice d = new AbstractVirtioDevice(0x3f, c) {
            @Override
            public QueueHandler openQueue(QueueBinding queue) {
                return (chain, slot) -> 0;
            }
        };
        assertEquals(8, d.configSize());
        d.writeConfig(4, new byte[] {1, 0, 0, 0});
        assertEquals(1, f.get());
        assertArrayEquals(new byte[] {0, 0, 1, 0}, d.readConfig(2, 4));
        assertEquals(c.generation(), d.configGeneration());
    }
}
