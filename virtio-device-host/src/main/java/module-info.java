/** The framework owns the threads: the queue engine and the hosts that run it. */
module org.jvirtio.host {
    requires transitive org.jvirtio.api;
    requires org.slf4j;
    requires io.netty.common;
    requires io.netty.transport;
    requires io.netty.transport.unix.common;
    requires io.netty.transport.classes.epoll;

    exports org.jvirtio.host;
}
