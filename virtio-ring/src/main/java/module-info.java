/** Split virtqueue, device side and driver side, shared by every transport and device. */
module org.jvirtio.ring {
    requires transitive org.jvirtio.api;
    requires org.slf4j;

    exports org.jvirtio.ring;
}
