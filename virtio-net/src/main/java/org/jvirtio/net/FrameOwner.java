package org.jvirtio.net;

/** Where a {@link Frame}'s buffer comes from, told when the last holder is done with it (any thread). */
interface FrameOwner {
    void sent(Frame f);
}
