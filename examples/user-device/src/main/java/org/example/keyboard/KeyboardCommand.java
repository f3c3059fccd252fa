package org.example.keyboard;

import java.util.List;

import com.google.inject.Module;
import com.google.inject.name.Names;
import org.jvirtio.command.DeviceCommand;
import org.jvirtio.command.Flags;

/** {@code bin/vhost-user keyboard --socket PATH [--text TEXT]}; {@code kill -HUP} types the text into the guest. */
public final class KeyboardCommand implements DeviceCommand<KeyboardDevice> {
    String name;
    String text;

    @Override
    public String name() {
        return "keyboard";
    }

    @Override
    public String description() {
        return "A virtio-input keyboard (QEMU's vhost-user-input-pci) that types --text into the guest on each SIGHUP.";
    }

    @Override
    public Class<KeyboardDevice> deviceClass() {
        return KeyboardDevice.class;
    }

    @Override
    public void flags(Flags flags) {
        flags.string("--name", "TEXT", "The keyboard's name (ID_NAME).", "jvirtio keyboard", v -> name = v);
        flags.string("--text", "TEXT", "What each SIGHUP types (letters, digits, space, newline and the usual punctuation).",
                "hello\n", v -> text = v);
    }

    @Override
    public List<Module> modules() {
        return List.of(b -> {
            b.bindConstant().annotatedWith(Names.named("name")).to(name);
            b.bindConstant().annotatedWith(Names.named("serial")).to("jvirtio-0");
        });
    }

    @Override
    public String reload(KeyboardDevice device) {
        device.type(text);
        return "typed " + text.length() + " characters";
    }
}
