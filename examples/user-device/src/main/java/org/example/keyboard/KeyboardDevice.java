package org.example.keyboard;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import jakarta.inject.Inject;
import jakarta.inject.Named;
import org.jvirtio.api.AbstractVirtioDevice;
import org.jvirtio.api.ConfigSpace;
import org.jvirtio.api.Inbox;
import org.jvirtio.api.QueueBinding;
import org.jvirtio.api.QueueHandler;
import org.jvirtio.api.linux.ErrnoException;

/**
 * A keyboard (virtio-input, VIRTIO 1.3, 5.8): it types text into the guest. The driver reads
 * what the keyboard is through the config space (select and subsel choose; the union answers),
 * keeps the event queue stocked with buffers, which the keyboard fills with key events as they
 * happen, and sends LED changes on the status queue, which the keyboard takes and ignores.
 */
public final class KeyboardDevice extends AbstractVirtioDevice {
    static final int EV_SYN = 0, EV_KEY = 1;
    static final int CFG_ID_NAME = 0x01, CFG_ID_SERIAL = 0x02, CFG_ID_DEVIDS = 0x03, CFG_PROP_BITS = 0x10, CFG_EV_BITS = 0x11;
    /** Linux key codes of the characters it can type, by position: "1" is KEY_1 (2), "q" KEY_Q (16), ... */
    static final String KEYS = "\u0000\u001b1234567890-=\b\tqwertyuiop[]\n\u0000asdfghjkl;'`\u0000\\zxcvbnm,./\u0000*\u0000 ";
    static final int MAX_KEY = KEYS.length() - 1;

    // struct virtio_input_config: the driver writes select and subsel, the device answers in size and u
    private final ConfigSpace.Field select = config().u8(0).writable(v -> answer());
    private final ConfigSpace.Field subsel = config().u8(1).writable(v -> answer());
    private final ConfigSpace.Field size = config().u8(2);
    private final ConfigSpace.Field union = config().bytes(8, 128);
    private final String name;
    private final String serial;
    /** Key events waiting for the driver's buffers: 8 bytes each (le16 type, le16 code, le32 value). */
    private final Inbox<byte[]> events = new Inbox<>(256, Inbox.WhenFull.DROP_NEWEST);

    @Inject
    public KeyboardDevice(@Named("name") String name, @Named("serial") String serial) throws ErrnoException {
        super(18, new ConfigSpace(136));
        this.name = name;
        this.serial = serial;
    }

    @Override
    public int queueCount() {
        return 2; // eventq, statusq
    }

    @Override
    public QueueHandler openQueue(QueueBinding queue) {
        if (queue.index() == 1) {
            return (chain, slot) -> 0; // an LED changed: nothing to light
        }
        return events.handler((chain, event) -> {
            chain.writer().write(event);
            return event.length;
        });
    }

    /** Types {@code text}: a press and a release, each followed by a report, per character it knows. */
    public void type(String text) {
        for (char c : text.toLowerCase(java.util.Locale.ROOT).toCharArray()) {
            int key = KEYS.indexOf(c);
            if (key > 0) {
                key(key, 1);
                key(key, 0);
            }
        }
    }

    private void key(int code, int value) {
        events.offer(event(EV_KEY, code, value));
        events.offer(event(EV_SYN, 0, 0)); // SYN_REPORT
    }

    private static byte[] event(int type, int code, int value) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putShort((short) type).putShort((short) code).putInt(value).array();
    }

    /** The driver chose what to read (select, subsel): the union and its size answer. */
    private void answer() {
        byte[] a = switch ((int) select.get()) {
            case CFG_ID_NAME -> name.getBytes(StandardCharsets.UTF_8);
            case CFG_ID_SERIAL -> serial.getBytes(StandardCharsets.UTF_8);
            case CFG_ID_DEVIDS -> ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                    .putShort((short) 0x06).putShort((short) 0x0627).putShort((short) 1).putShort((short) 1).array(); // BUS_VIRTUAL
            case CFG_EV_BITS -> switch ((int) subsel.get()) {
                case EV_SYN -> new byte[] {1}; // SYN_REPORT
                case EV_KEY -> keyBits();
                default -> new byte[0];
            };
            default -> new byte[0]; // PROP_BITS: none; ABS_INFO: no axes; UNSET
        };
        byte[] clipped = java.util.Arrays.copyOf(a, Math.min(a.length, 128));
        union.set(clipped);
        size.set(clipped.length);
    }

    private static byte[] keyBits() {
        byte[] bits = new byte[MAX_KEY / 8 + 1];
        for (int key = 1; key <= MAX_KEY; key++) {
            if (KEYS.charAt(key) != 0) {
                bits[key / 8] |= (byte) (1 << (key % 8));
            }
        }
        return bits;
    }
}
