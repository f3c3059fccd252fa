/** The vhost-user transport (QEMU docs/interop/vhost-user.rst). Not implemented yet: only the module shape exists. */
package org.jvirtio.transport.vhostuser;
