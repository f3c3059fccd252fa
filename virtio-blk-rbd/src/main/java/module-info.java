/**
 * virtio-blk disks on a Ceph cluster: RBD images through Ceph's own client library (librbd and
 * librados, bound with FFM; no JNI, no callbacks into Java). A device module: it sees virtio-api
 * and virtio-blk only; {@code bin/vhost-user blk --rbd POOL/IMAGE} composes it.
 */
module org.jvirtio.blk.rbd {
    requires transitive org.jvirtio.api;
    requires transitive org.jvirtio.blk;
    requires org.slf4j;

    exports org.jvirtio.blk.rbd;
}
