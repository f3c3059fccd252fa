package org.jvirtio.blk.rbd;

/** {@code pool/image} or {@code pool/namespace/image}. */
public record RbdImageName(String pool, String namespace, String image) {
    public static RbdImageName parse(String s) {
        String[] p = s.split("/", -1);
        for (String part : p) {
            if (part.isEmpty()) {
                throw new IllegalArgumentException("--rbd " + s + " is not POOL/IMAGE or POOL/NAMESPACE/IMAGE");
            }
            if (part.indexOf('@') >= 0 || part.indexOf('\0') >= 0) {
                throw new IllegalArgumentException("--rbd " + s + ": snapshots (@) are not served; name the image itself");
            }
        }
        return switch (p.length) {
            case 2 -> new RbdImageName(p[0], "", p[1]);
            case 3 -> new RbdImageName(p[0], p[1], p[2]);
            default -> throw new IllegalArgumentException("--rbd " + s + " is not POOL/IMAGE or POOL/NAMESPACE/IMAGE");
        };
    }

    @Override
    public String toString() {
        return namespace.isEmpty() ? pool + "/" + image : pool + "/" + namespace + "/" + image;
    }
}
