/** One runner for every device: bin/vhost-user DEVICE --socket PATH [device options]. */
module org.jvirtio.runner {
    requires transitive org.jvirtio.api;
    requires transitive org.jvirtio.host;
    requires transitive org.jvirtio.transport.vhostuser;
    requires transitive com.google.guice;
    requires jdk.unsupported;
    requires org.slf4j;

    exports org.jvirtio.runner;

    uses org.jvirtio.runner.DeviceCommand;
}
