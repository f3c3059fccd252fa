/**
 * The device-command SPI: a device's name, flags ({@code Flags}) and Guice composition
 * ({@code DeviceCommand}), found with {@link java.util.ServiceLoader} by whatever serves devices
 * (virtio-runner's {@code bin/vhost-user}). Device modules depend on this and on virtio-api only,
 * never on a transport or on the runner.
 */
module org.jvirtio.command {
    requires transitive org.jvirtio.api;
    requires transitive com.google.guice;

    exports org.jvirtio.command;
}
