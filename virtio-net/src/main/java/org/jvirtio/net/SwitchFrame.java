package org.jvirtio.net;

/**
 * A frame on its way through a switch, as a {@link FrameStage} sees it: its first bytes (read once
 * from the sender's memory when it was taken, so what a stage decides on is what is forwarded),
 * its addresses and offload header; valid only during {@link FrameStage#accept}.
 */
public interface SwitchFrame {
    /** How many of the frame's first bytes {@link #byteAt} can read. */
    int HEAD = 64;

    /** The port that sent it. */
    SwitchPort from();

    /** Its length in bytes (without the virtio header). */
    int length();

    /** The destination MAC address (48 bits). */
    long destination();

    /** The source MAC address (48 bits). */
    long source();

    /** The EtherType (after one VLAN tag, if there is one). */
    int etherType();

    /** Byte {@code offset} of the frame (0 to {@link #HEAD} - 1), or -1 past the frame or past what was read. */
    int byteAt(int offset);

    /** The virtio-net header it was sent with. */
    NetHeader header();

    /** Forwards it to {@code mac} instead, with that destination address in every copy. */
    void rewriteDestination(long mac);

    /** Gives it {@code mac} as its source in every copy (and the switch learns that address). */
    void rewriteSource(long mac);
}
