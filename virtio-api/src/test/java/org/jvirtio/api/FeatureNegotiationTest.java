package org.jvirtio.api;

import org.junit.jupiter.api.Test;

import static org.jvirtio.api.VirtioFeatures.*;
import static org.junit.jupiter.api.Assertions.*;

class FeatureNegotiationTest {
    @Test
    void subsetWithVersion1IsAccepted() {
        long offered = mask(VERSION_1, EVENT_IDX, INDIRECT_DESC, BLK_FLUSH);
        var r = FeatureNegotiation.negotiate(offered, mask(VERSION_1, EVENT_IDX), true);
        assertTrue(r.accepted());
        assertEquals(mask(VERSION_1, EVENT_IDX), r.features());
    }

    @Test
    void bitsNotOfferedAreRefusedAndNamed() {
        var r = FeatureNegotiation.negotiate(mask(VERSION_1), mask(VERSION_1, RING_PACKED), true);
        assertFalse(r.accepted());
        assertEquals(FeatureNegotiation.Refusal.NOT_OFFERED, r.refusal());
        assertEquals(bit(RING_PACKED), r.offendingBits());
        assertTrue(r.message().contains("0x400000000"), r.message());
    }

    @Test
    void legacyDriverIsRefused() {
        var r = FeatureNegotiation.negotiate(mask(VERSION_1, EVENT_IDX), mask(EVENT_IDX), true);
        assertEquals(FeatureNegotiation.Refusal.VERSION_1_MISSING, r.refusal());
        assertTrue(FeatureNegotiation.negotiate(mask(VERSION_1, EVENT_IDX), mask(EVENT_IDX), false).accepted());
    }

    @Test
    void bitHelpersCheckRange() {
        assertThrows(IllegalArgumentException.class, () -> bit(64));
        assertThrows(IllegalArgumentException.class, () -> bit(-1));
        assertTrue(has(RING_FEATURES, VERSION_1));
    }

    @Test
    void statusTransitionsFollowInitializationOrder() {
        int a = DeviceStatus.ACKNOWLEDGE;
        int d = a | DeviceStatus.DRIVER;
        int f = d | DeviceStatus.FEATURES_OK;
        int ok = f | DeviceStatus.DRIVER_OK;
        assertTrue(DeviceStatus.isLegalTransition(0, a));
        assertTrue(DeviceStatus.isLegalTransition(a, d));
        assertTrue(DeviceStatus.isLegalTransition(d, f));
        assertTrue(DeviceStatus.isLegalTransition(f, ok));
        assertTrue(DeviceStatus.isLegalTransition(ok, 0), "reset is always legal");
        assertTrue(DeviceStatus.isLegalTransition(d, d | DeviceStatus.FAILED));
        assertFalse(DeviceStatus.isLegalTransition(0, DeviceStatus.DRIVER), "DRIVER before ACKNOWLEDGE");
        assertFalse(DeviceStatus.isLegalTransition(d, d | DeviceStatus.DRIVER_OK), "DRIVER_OK before FEATURES_OK");
        assertFalse(DeviceStatus.isLegalTransition(ok, f), "clearing a bit without reset");
        assertFalse(DeviceStatus.isLegalTransition(a, a | DeviceStatus.DEVICE_NEEDS_RESET), "driver cannot set NEEDS_RESET");
        assertFalse(DeviceStatus.isLegalTransition(a, a | 0x10), "unknown bit");
        assertTrue(DeviceStatus.isLegalTransition(ok | DeviceStatus.DEVICE_NEEDS_RESET, ok | DeviceStatus.DEVICE_NEEDS_RESET | DeviceStatus.FAILED));
        assertEquals("ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK", DeviceStatus.describe(ok));
    }
}
