/** Guest memory, the VirtioDevice SPI, feature bits, device status, eventfds. */
module org.jvirtio.api {
    requires org.slf4j;
    requires transitive jdk.jfr;

    exports org.jvirtio.api;
    exports org.jvirtio.api.linux;
    exports org.jvirtio.api.jfr;
}
