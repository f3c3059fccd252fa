/** Runnable backends and demos; Guice composition roots. */
module org.jvirtio.examples {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;
    requires org.jvirtio.blk;
    requires org.jvirtio.blk.dataplane;
    requires org.jvirtio.transport.vhostuser;
    requires org.jvirtio.runner;
    requires org.jvirtio.transport.mmio;
    requires org.jvirtio.rng;
    requires com.google.guice;
    requires info.picocli;
    requires org.slf4j;
    requires ch.qos.logback.classic;
    requires ch.qos.logback.core;
    requires jdk.unsupported;

    exports org.jvirtio.examples.ringdemo;
    exports org.jvirtio.examples.blk;
    exports org.jvirtio.examples.mmio;
    opens org.jvirtio.examples.ringdemo to info.picocli;
    opens org.jvirtio.examples.blk to info.picocli, com.google.guice;
    opens org.jvirtio.examples.mmio to info.picocli;

    provides org.jvirtio.runner.DeviceCommand with org.jvirtio.examples.blk.BlkCommand;
    provides ch.qos.logback.classic.spi.Configurator with org.jvirtio.examples.logging.BackendLogging;
}
