/** The vhost-user transport (QEMU docs/interop/vhost-user.rst): a backend VMMs connect to, and a Java front-end. */
module org.jvirtio.transport.vhostuser {
    requires transitive org.jvirtio.api;
    requires org.jvirtio.ring;
    requires transitive org.jvirtio.host;
    requires org.slf4j;
    requires io.netty.common;
    requires io.netty.transport;
    requires io.netty.transport.unix.common;
    requires io.netty.transport.classes.epoll;

    exports org.jvirtio.transport.vhostuser;
}
