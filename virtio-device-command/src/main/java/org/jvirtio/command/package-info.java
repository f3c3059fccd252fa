/** The device-command SPI: {@link org.jvirtio.command.DeviceCommand} and its {@link org.jvirtio.command.Flags}. */
package org.jvirtio.command;
