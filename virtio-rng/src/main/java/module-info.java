/** virtio-rng (VIRTIO 1.3, 5.4) and its runner subcommand. */
module org.jvirtio.rng {
    requires transitive org.jvirtio.api;
    requires org.jvirtio.runner;

    exports org.jvirtio.rng;
    opens org.jvirtio.rng to com.google.guice;

    provides org.jvirtio.runner.DeviceCommand with org.jvirtio.rng.RngCommand;
}
