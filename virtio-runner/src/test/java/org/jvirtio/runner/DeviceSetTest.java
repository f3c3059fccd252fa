package org.jvirtio.runner;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.jvirtio.command.DeviceCommand;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The process's set of devices, in process: ids given in order and never reused, a refused add
 * that leaves nothing behind, and each device's life as JFR events (started, removed, stopped).
 */
class DeviceSetTest {
    @TempDir
    Path dir;

    @Test
    void devicesComeAndGoUnderIdsAndTheirLivesAreRecorded() throws Exception {
        Map<String, DeviceCommand<?>> known = Map.of("stall", new StallCommand());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Path file = dir.resolve("rec.jfr");
        try (Recording rec = new Recording()) {
            rec.enable("org.jvirtio.DeviceLifecycle");
            rec.start();
            try (SeveralDevices.Shared shared = SeveralDevices.Shared.forParts(List.of(), 1)) {
                DeviceSet set = new DeviceSet(known, shared, null, new PrintStream(out, true, StandardCharsets.UTF_8), true);
                DeviceSet.Entry a = set.add(null, List.of("stall", "--socket", dir.resolve("a.sock").toString()));
                DeviceSet.Entry b = set.add("vm-b", List.of("stall", "--socket", dir.resolve("b.sock").toString()));
                assertEquals("stall0", a.id());
                assertEquals("vm-b", b.id());
                assertThrows(IllegalArgumentException.class, () -> set.add(null, List.of("stall", "--socket", dir.resolve("c.sock").toString(), "--nope")));
                assertFalse(Files.exists(dir.resolve("c.sock")), "a refused add listens nowhere");
                set.remove("stall0");
                assertFalse(Files.exists(dir.resolve("a.sock")));
                DeviceSet.Entry c = set.add(null, List.of("stall", "--socket", dir.resolve("a.sock").toString()));
                assertEquals("stall1", c.id(), "the removed stall0 is not given again; the refused add took no id");
                assertEquals(List.of("vm-b", "stall1"), set.entries().stream().map(DeviceSet.Entry::id).toList());
                set.close();
                assertEquals(0, set.size());
                assertThrows(IllegalStateException.class, () -> set.add(null, List.of("stall", "--socket", dir.resolve("d.sock").toString())),
                        "nothing is added to a closed set");
            }
            rec.stop();
            rec.dump(file);
        }
        List<String> seen = RecordingFile.readAllEvents(file).stream()
                .sorted(java.util.Comparator.comparing(RecordedEvent::getStartTime))
                .map(e -> e.getString("id") + " " + e.getString("what")).toList();
        assertEquals(List.of("stall0 started", "vm-b started", "stall0 removed", "stall1 started", "stall1 stopped", "vm-b stopped"), seen);
    }
}
