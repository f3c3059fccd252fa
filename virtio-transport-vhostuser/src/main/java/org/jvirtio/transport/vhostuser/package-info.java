/**
 * The vhost-user transport (QEMU docs/interop/vhost-user.rst): {@link
 * org.jvirtio.transport.vhostuser.VhostUserBackend}, the server a VMM connects to, and {@link
 * org.jvirtio.transport.vhostuser.VhostUserFrontend}, the client side a Java program uses to
 * drive any vhost-user device.
 */
package org.jvirtio.transport.vhostuser;
