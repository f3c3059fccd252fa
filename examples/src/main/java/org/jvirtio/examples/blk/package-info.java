/** The vhost-user-blk example backend ({@code bin/vhost-user-blk}) and a Java user-space client for it. */
package org.jvirtio.examples.blk;
