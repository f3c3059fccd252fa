package org.jvirtio.blk.rbd;

/**
 * {@code pool/image} or {@code pool/namespace/image}, with {@code @snapshot} after the image for
 * one of its snapshots (served read-only); {@code snapshot} is empty for the image itself.
 */
public record RbdImageName(String pool, String namespace, String image, String snapshot) {
    public static RbdImageName parse(String s) {
        String[] p = s.split("/", -1);
        String snapshot = "";
        String last = p[p.length - 1];
        int at = last.indexOf('@');
        if (at >= 0) {
            snapshot = last.substring(at + 1);
            p[p.length - 1] = last.substring(0, at);
            if (snapshot.isEmpty() || snapshot.indexOf('@') >= 0) {
                throw new IllegalArgumentException("--rbd " + s + ": a snapshot is named once, after the image: POOL/IMAGE@SNAPSHOT");
            }
        }
        for (String part : p) {
            if (part.isEmpty()) {
                throw new IllegalArgumentException("--rbd " + s + " is not POOL/IMAGE or POOL/NAMESPACE/IMAGE (with @SNAPSHOT for a snapshot)");
            }
            if (part.indexOf('@') >= 0) {
                throw new IllegalArgumentException("--rbd " + s + ": a snapshot is named once, after the image: POOL/IMAGE@SNAPSHOT");
            }
        }
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("--rbd: a name with a NUL byte");
        }
        return switch (p.length) {
            case 2 -> new RbdImageName(p[0], "", p[1], snapshot);
            case 3 -> new RbdImageName(p[0], p[1], p[2], snapshot);
            default -> throw new IllegalArgumentException("--rbd " + s + " is not POOL/IMAGE or POOL/NAMESPACE/IMAGE (with @SNAPSHOT for a snapshot)");
        };
    }

    /** The image itself (this name without its snapshot). */
    public RbdImageName withoutSnapshot() {
        return new RbdImageName(pool, namespace, image, "");
    }

    /** Whether this names a snapshot (always served read-only). */
    public boolean isSnapshot() {
        return !snapshot.isEmpty();
    }

    @Override
    public String toString() {
        String base = namespace.isEmpty() ? pool + "/" + image : pool + "/" + namespace + "/" + image;
        return snapshot.isEmpty() ? base : base + "@" + snapshot;
    }
}
