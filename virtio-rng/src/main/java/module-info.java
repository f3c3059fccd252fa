/** virtio-rng (VIRTIO 1.3, 5.4) and its device command ({@code bin/vhost-user rng}). */
module org.jvirtio.rng {
    requires transitive org.jvirtio.api;
    requires org.jvirtio.command;

    exports org.jvirtio.rng;
    opens org.jvirtio.rng to com.google.guice;

    provides org.jvirtio.command.DeviceCommand with org.jvirtio.rng.RngCommand;
}
