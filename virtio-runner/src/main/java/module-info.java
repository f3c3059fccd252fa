/**
 * The vhost-user runner, {@code bin/vhost-user DEVICE --socket PATH [device flags]}: serves any
 * device found as an {@code org.jvirtio.command.DeviceCommand} over the vhost-user transport, on
 * the framework's queue hosts. It serves vhost-user only; a VMM that embeds the MMIO transport
 * composes devices itself.
 */
module org.jvirtio.runner {
    requires transitive org.jvirtio.api;
    requires transitive org.jvirtio.command;
    requires transitive org.jvirtio.host;
    requires transitive org.jvirtio.transport.vhostuser;
    requires transitive com.google.guice;
    requires jdk.unsupported;
    requires jdk.httpserver;
    requires micrometer.core;
    requires micrometer.registry.prometheus;
    requires io.prometheus.metrics.model;
    requires org.slf4j;
    requires io.netty.buffer;
    requires io.netty.common;
    requires io.netty.transport;
    requires io.netty.transport.unix.common;
    requires io.netty.transport.classes.epoll;
    requires io.netty.codec;
    requires io.netty.codec.http;
    requires io.netty.handler;
    requires transitive com.fasterxml.jackson.databind;
    requires static ch.qos.logback.classic;

    exports org.jvirtio.runner;

    uses org.jvirtio.command.DeviceCommand;
}
