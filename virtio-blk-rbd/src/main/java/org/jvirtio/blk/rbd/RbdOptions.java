package org.jvirtio.blk.rbd;

import java.nio.file.Path;

/**
 * How to reach the cluster.
 *
 * @param conf                  ceph.conf to read, or null for librados' default search
 *                              ({@code $CEPH_CONF}, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf)
 * @param user                  the client's name without {@code client.} (its key comes from the
 *                              keyring the conf names), or null for {@code admin}
 * @param connectTimeoutSeconds how long connecting to the monitors may take
 * @param opTimeoutSeconds      how long an operation waits for an OSD (or a monitor) before it fails
 * @param resizeCheckMillis     how often the image's size is compared with the last one (0: never)
 * @param settings              librados/librbd settings applied last ({@code rados_conf_set}), e.g.
 *                              {@code rbd_non_blocking_aio=false}
 * @param lockDir               where this host's backends record their Ceph clients, so that one
 *                              restarted after a crash takes the image's exclusive lock from its
 *                              dead predecessor at once ({@link RbdLockTakeover}); null: no records
 */
public record RbdOptions(Path conf, String user, int connectTimeoutSeconds, int opTimeoutSeconds, long resizeCheckMillis,
                         java.util.Map<String, String> settings, Path lockDir) {
    public RbdOptions {
        settings = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(settings));
    }

    public RbdOptions(Path conf, String user, int connectTimeoutSeconds, int opTimeoutSeconds, long resizeCheckMillis) {
        this(conf, user, connectTimeoutSeconds, opTimeoutSeconds, resizeCheckMillis, java.util.Map.of(), defaultLockDir());
    }

    /** The default {@link #lockDir}: {@code $XDG_RUNTIME_DIR/jvirtio-rbd}, {@code /run/jvirtio-rbd} for root, else {@code /tmp/jvirtio-rbd-UID}. */
    public static Path defaultLockDir() {
        return RbdLockTakeover.defaultDir();
    }

    /** With records in {@code dir} (null: none). */
    public RbdOptions withLockDir(Path dir) {
        return new RbdOptions(conf, user, connectTimeoutSeconds, opTimeoutSeconds, resizeCheckMillis, settings, dir);
    }

    public static RbdOptions defaults() {
        return new RbdOptions(null, null, 10, 30, 1000);
    }

    /**
     * With {@code KEY=VALUE[,KEY=VALUE...]} settings (as QEMU's {@code rbd:pool/image:key=value});
     * a malformed list is refused here, an unknown key when the backend opens.
     */
    public RbdOptions withSettings(String list) {
        java.util.Map<String, String> m = new java.util.LinkedHashMap<>();
        if (list != null) {
            for (String kv : list.split(",", -1)) {
                int eq = kv.indexOf('=');
                if (eq <= 0 || eq == kv.length() - 1 || kv.indexOf('\0') >= 0) {
                    throw new IllegalArgumentException("--ceph-options " + list + ": \"" + kv + "\" is not KEY=VALUE");
                }
                if (m.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim()) != null) {
                    throw new IllegalArgumentException("--ceph-options " + list + ": " + kv.substring(0, eq) + " given twice");
                }
            }
        }
        return new RbdOptions(conf, user, connectTimeoutSeconds, opTimeoutSeconds, resizeCheckMillis, m, lockDir);
    }

    public RbdOptions withConf(Path c) {
        return new RbdOptions(c, user, connectTimeoutSeconds, opTimeoutSeconds, resizeCheckMillis, settings, lockDir);
    }

    public RbdOptions withUser(String u) {
        return new RbdOptions(conf, u, connectTimeoutSeconds, opTimeoutSeconds, resizeCheckMillis, settings, lockDir);
    }

    public RbdOptions withOpTimeout(int seconds) {
        return new RbdOptions(conf, user, connectTimeoutSeconds, seconds, resizeCheckMillis, settings, lockDir);
    }

    public RbdOptions withConnectTimeout(int seconds) {
        return new RbdOptions(conf, user, seconds, opTimeoutSeconds, resizeCheckMillis, settings, lockDir);
    }

    public RbdOptions withResizeCheck(long millis) {
        return new RbdOptions(conf, user, connectTimeoutSeconds, opTimeoutSeconds, millis, settings, lockDir);
    }
}
