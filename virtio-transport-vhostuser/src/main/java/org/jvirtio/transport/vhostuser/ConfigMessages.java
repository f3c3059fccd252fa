package org.jvirtio.transport.vhostuser;

import org.jvirtio.api.VirtioDevice;
import org.jvirtio.transport.vhostuser.VhostUserCodec.Config;

/**
 * GET_CONFIG and SET_CONFIG against the device's configuration space. QEMU reads the whole space
 * (or more: the size its own device model knows) and, on any driver write, rewrites the whole of
 * it; bytes read past {@code configSize()} are zero (fields a newer front-end knows and this
 * device does not offer), a write that reaches past it is refused.
 */
final class ConfigMessages {
    private ConfigMessages() {
    }

    /** The GET_CONFIG reply for {@code c}. */
    static byte[] read(VirtioDevice device, Config c) {
        byte[] data = new byte[c.size()];
        int have = device.configSize();
        if (c.offset() < have) {
            int n = Math.min(c.size(), have - c.offset());
            byte[] part = device.readConfig(c.offset(), n);
            System.arraycopy(part, 0, data, 0, n);
        }
        return VhostUserCodec.encodeConfig(c.offset(), c.flags(), data);
    }

    /** Applies SET_CONFIG {@code c} (named {@code name} in the error). */
    static void write(VirtioDevice device, String name, Config c) throws VhostUserProtocolException {
        if (c.offset() + c.size() > device.configSize()) {
            throw new VhostUserProtocolException(name + ": range offset " + c.offset() + " size " + c.size()
                    + " exceeds the device's " + device.configSize() + "-byte config space");
        }
        device.writeConfig(c.offset(), c.data());
    }
}
