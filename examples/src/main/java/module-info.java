/** Runnable backends and demos; Guice composition roots. */
module org.jvirtio.examples {
    requires org.jvirtio.api;
    requires org.jvirtio.ring;
    requires info.picocli;
    requires org.slf4j;

    exports org.jvirtio.examples.ringdemo;
    opens org.jvirtio.examples.ringdemo to info.picocli;
}
