package org.jvirtio.api;

import org.junit.jupiter.api.Test;

import static org.jvirtio.api.VirtioFeatures.*;
import static org.junit.jupiter.api.Assertions.*;

class FeatureNegotiationTest {
    @Test
    void subsetWithVersion1IsAccepted() {
        long offered = mask(VERSION_1, EVENT_IDX, INDIRECT_DESC, 9);
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
        assertEquals("driver acknowledged features the device does not offer: bit 34 (VIRTIO_F_RING_PACKED)", r.message());
        var two = FeatureNegotiation.negotiate(mask(VERSION_1), mask(VERSION_1, 7, RING_RESET), true);
        assertEquals("driver acknowledged features the device does not offer: bit 7, bit 40 (VIRTIO_F_RING_RESET) (QEMU 7.2 adds"
                + " VIRTIO_F_RING_RESET of its own; add queue_reset=off to the -device options)", two.message());
    }

    /** vhost-user tolerates RING_RESET that QEMU 7.2 passes on without an offer: dropped, not refused; nothing else is tolerated. */
    @Test
    void aToleratedBitIsDroppedAndReportedAndOthersAreStillRefused() {
        long offered = mask(VERSION_1, EVENT_IDX);
        var r = FeatureNegotiation.negotiate(offered, mask(VERSION_1, EVENT_IDX, RING_RESET), true, FeatureNegotiation.VHOST_USER_TOLERATED);
        assertTrue(r.accepted());
        assertEquals(mask(VERSION_1, EVENT_IDX), r.features(), "the device never sees it negotiated");
        assertEquals(bit(RING_RESET), r.ignoredBits());
        var refused = FeatureNegotiation.negotiate(offered, mask(VERSION_1, RING_RESET, RING_PACKED), true,
                FeatureNegotiation.VHOST_USER_TOLERATED);
        assertEquals(bit(RING_PACKED), refused.offendingBits());
        assertFalse(FeatureNegotiation.negotiate(offered, mask(VERSION_1, RING_RESET), true).accepted(), "MMIO tolerates nothing");
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

    @Test
    void aggregateStatusAcceptsQemusOrderAndRefusesTheRest() {
        int fo = DeviceStatus.FEATURES_OK;
        int all = fo | DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK;
        // QEMU's vhost-user: FEATURES_OK alone when it sets the features, the rest at start.
        assertTrue(DeviceStatus.isLegalAggregateTransition(0, fo));
        assertTrue(DeviceStatus.isLegalAggregateTransition(fo, all));
        assertTrue(DeviceStatus.isLegalAggregateTransition(all, all), "the same status again");
        assertTrue(DeviceStatus.isLegalAggregateTransition(all, 0));
        assertFalse(DeviceStatus.isLegalAggregateTransition(0, DeviceStatus.DRIVER_OK), "DRIVER_OK without FEATURES_OK");
        assertFalse(DeviceStatus.isLegalAggregateTransition(all, fo), "clearing bits without reset");
        assertFalse(DeviceStatus.isLegalAggregateTransition(fo, fo | DeviceStatus.DEVICE_NEEDS_RESET), "NEEDS_RESET is the device's");
        assertFalse(DeviceStatus.isLegalAggregateTransition(0, 0x30), "unknown bits");
    }

    @Test
    void transportsOfferRingFeaturesOnTopOfTheDevicesOwn() {
        VirtioDevice d = new AbstractVirtioDevice(4) {
            @Override
            public long deviceFeatures() {
                return bit(3);
            }

            @Override
            public QueueHandler openQueue(QueueBinding queue) {
                return (chain, slot) -> 0;
            }
        };
        assertEquals(RING_FEATURES | bit(3), FeatureNegotiation.offered(d));
        assertEquals(1, d.queueCount());
        assertEquals(0, d.configSize());
        assertEquals(VirtioDevice.DEFAULT_MAX_CHAIN_LENGTH, d.maxChainLength());
    }
}
