/**
 * The assembly the launchers run: bin/vhost-user's class path (every device module, the runner,
 * the logging configuration of a backend), bin/demo, bin/ring-demo, bin/mmio-demo and the tools
 * (BlkClient, BlkBench). The blk backend itself is virtio-blk-dataplane's BlkCommand; nothing
 * depends on this module.
 */
module org.jvirtio.examples {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;
    requires org.jvirtio.blk;
    requires org.jvirtio.blk.dataplane;
    requires org.jvirtio.transport.vhostuser;
    requires org.jvirtio.command;
    requires org.jvirtio.runner;
    requires org.jvirtio.transport.mmio;
    requires org.jvirtio.proxy;
    requires org.jvirtio.rng;
    requires org.jvirtio.net;
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
    opens org.jvirtio.examples.blk to info.picocli;
    opens org.jvirtio.examples.mmio to info.picocli;

    provides ch.qos.logback.classic.spi.Configurator with org.jvirtio.examples.logging.BackendLogging;
}
