package org.jvirtio.net;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.jvirtio.api.VirtioFeatures;
import org.jvirtio.runner.VhostUserRunner;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The tap uplink: a port's switch gets a host tap device ({@code --tap NAME}) that the test moves
 * into a network namespace of its own and gives an address; the guest (the driver kit) asks for
 * that address with ARP and pings it, and the host's kernel answers through the switch. All the
 * traffic stays in the namespace.
 */
class NetTapTest {
    static final long A = 0x5254_0000_000aL;
    static final int GUEST_IP = 0x0a4d_0001;   // 10.77.0.1
    static final int HOST_IP = 0x0a4d_00fe;    // 10.77.0.254

    @TempDir
    Path dir;

    static boolean canMakeTaps() {
        return Files.exists(Path.of("/dev/net/tun")) && "root".equals(System.getProperty("user.name"))
                && (Files.isExecutable(Path.of("/usr/sbin/ip")) || Files.isExecutable(Path.of("/sbin/ip")) || Files.isExecutable(Path.of("/usr/bin/ip")));
    }

    static void sh(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(10, TimeUnit.SECONDS), String.join(" ", cmd));
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + ": " + out);
    }

    static void put(byte[] b, int at, long v, int bytes) {
        for (int i = 0; i < bytes; i++) {
            b[at + i] = (byte) (v >>> (8 * (bytes - 1 - i)));
        }
    }

    static long get(byte[] b, int at, int bytes) {
        long v = 0;
        for (int i = 0; i < bytes; i++) {
            v = (v << 8) | (b[at + i] & 0xff);
        }
        return v;
    }

    static int checksum(byte[] b, int from, int n) {
        long s = 0;
        for (int i = 0; i < n; i += 2) {
            s += ((b[from + i] & 0xff) << 8) | (i + 1 < n ? b[from + i + 1] & 0xff : 0);
        }
        while ((s >> 16) != 0) {
            s = (s & 0xffff) + (s >> 16);
        }
        return ~(int) s & 0xffff;
    }

    static byte[] arpRequest() {
        byte[] f = new byte[42];
        put(f, 0, 0xffff_ffff_ffffL, 6);
        put(f, 6, A, 6);
        put(f, 12, 0x0806, 2);
        put(f, 14, 1, 2);
        put(f, 16, 0x0800, 2);
        f[18] = 6;
        f[19] = 4;
        put(f, 20, 1, 2);
        put(f, 22, A, 6);
        put(f, 28, GUEST_IP, 4);
        put(f, 38, HOST_IP, 4);
        return f;
    }

    static byte[] ping(long dst, int seq) {
        byte[] f = new byte[14 + 20 + 8 + 56];
        put(f, 0, dst, 6);
        put(f, 6, A, 6);
        put(f, 12, 0x0800, 2);
        f[14] = 0x45;
        put(f, 16, 20 + 8 + 56, 2);
        put(f, 18, seq, 2);
        f[22] = 64;
        f[23] = 1;
        put(f, 26, GUEST_IP, 4);
        put(f, 30, HOST_IP, 4);
        put(f, 24, checksum(f, 14, 20), 2);
        f[34] = 8;
        put(f, 38, 0x4a56, 2);
        put(f, 40, seq, 2);
        for (int i = 42; i < f.length; i++) {
            f[i] = (byte) i;
        }
        put(f, 36, checksum(f, 34, f.length - 34), 2);
        return f;
    }

    /** The next frame of {@code type} the guest receives (the host also sends IPv6 neighbour discovery). */
    static byte[] next(NetDriver d, int type, long millis) throws Exception {
        long end = System.currentTimeMillis() + millis;
        while (System.currentTimeMillis() < end) {
            for (NetDriver.Received r : d.receive(1, 200)) {
                d.post(1);
                if (get(r.frame(), 12, 2) == type) {
                    return r.frame();
                }
            }
        }
        return null;
    }

    @Test
    void aGuestReachesAnAddressBehindTheTap() throws Exception {
        // Root (CAP_NET_ADMIN) is needed for a tap and a namespace; CI machines here run as root,
        // a developer's may not: skipped then, saying why.
        assumeTrue(canMakeTaps(), "not root, or no /dev/net/tun or ip");
        String id = Long.toHexString(System.nanoTime() & 0xffffff);
        String tap = "jvt" + id;
        String ns = "jvirtio-" + id;
        try (var port = VhostUserRunner.start(VhostUserRunner.devices(), "net", "--socket", dir.resolve("a.sock").toString(),
                "--switch", "tap" + id, "--tap", tap)) {
            sh("ip", "netns", "add", ns);
            try {
                sh("ip", "link", "set", tap, "netns", ns);
                sh("ip", "-n", ns, "addr", "add", "10.77.0.254/24", "dev", tap);
                sh("ip", "-n", ns, "link", "set", tap, "up");
                try (NetDriver a = new NetDriver(dir.resolve("a.sock"), ~(1L << VirtioFeatures.RING_PACKED), 2048)) {
                    a.post(NetDriver.SIZE);
                    a.send(arpRequest());
                    byte[] reply = next(a, 0x0806, 5000);
                    assertNotNull(reply, "no ARP reply from the host");
                    assertEquals(2, get(reply, 20, 2), "an ARP reply");
                    assertEquals(HOST_IP, get(reply, 28, 4));
                    long hostMac = get(reply, 22, 6);
                    assertEquals(hostMac, get(reply, 6, 6));
                    for (int seq = 1; seq <= 3; seq++) {
                        a.send(ping(hostMac, seq));
                        byte[] echo = next(a, 0x0800, 5000);
                        assertNotNull(echo, "no echo reply " + seq);
                        assertEquals(0, echo[34], "ICMP echo reply");
                        assertEquals(seq, get(echo, 40, 2));
                        assertEquals(HOST_IP, get(echo, 26, 4));
                        assertEquals(0xffff - 0xffff, checksum(echo, 34, echo.length - 34), "its ICMP checksum");
                    }
                    SwitchPort guest = ((VirtioNetDevice) port.device()).port();
                    assertEquals(0, guest.txDropped());
                    assertTrue(guest.rxFrames() >= 4, guest.stats());
                }
            } finally {
                sh("ip", "netns", "del", ns);
            }
        }
        assertFalse(Files.exists(Path.of("/sys/class/net/" + tap)), "the tap went away with the backend");
    }
}
