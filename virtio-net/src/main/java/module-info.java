/** virtio-net (VIRTIO 1.3, 5.1) as the ports of a learning switch, and its device command ({@code bin/vhost-user net}). */
module org.jvirtio.net {
    requires transitive org.jvirtio.api;
    requires org.jvirtio.command;
    requires org.slf4j;

    exports org.jvirtio.net;
    opens org.jvirtio.net to com.google.guice;

    provides org.jvirtio.command.DeviceCommand with org.jvirtio.net.NetCommand;
}
