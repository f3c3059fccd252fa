package org.jvirtio.net;

import java.util.concurrent.atomic.AtomicInteger;

import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;
import org.openjdk.jcstress.infra.results.ZI_Result;

/**
 * A switch frame's holders (virtio-net's {@link Frame}): the sending thread counts its own
 * holders in a plain field and lets go of the frame without an atomic instruction when no other
 * thread holds it; a holder on another thread lets go with one. Whatever the interleaving, the
 * frame ends exactly once (its sender's chain goes back to the guest once, never twice, never not
 * at all), and the side that ends it sees what the other holder did before letting go (its copy
 * out of the sender's buffer is over before the buffer goes back).
 */
public final class FrameHandOverJcstress {
    private FrameHandOverJcstress() {
    }

    /** A frame begun on the state's thread, the sending side's holders and one holder elsewhere. */
    static class Held implements FrameOwner {
        final AtomicInteger ended = new AtomicInteger();
        final Frame f = new Frame(this, 0);
        /** What the holder elsewhere wrote before letting go (its copy, in the switch). */
        int copied;

        @Override
        public void sent(Frame frame) {
            ended.incrementAndGet();
        }
    }

    @JCStressTest
    @Description("the sender lets go (plain) while a holder on another thread lets go (atomic): the frame ends once")
    @Outcome(id = "1, 0", expect = Expect.ACCEPTABLE, desc = "the sender's release ended it (the other had let go)")
    @Outcome(id = "0, 1", expect = Expect.ACCEPTABLE, desc = "the other holder's release ended it")
    @Outcome(id = "0, 0", expect = Expect.FORBIDDEN, desc = "nobody ended it: the guest's chain never comes back")
    @Outcome(expect = Expect.FORBIDDEN, desc = "ended twice: the chain comes back twice")
    @State
    public static class SenderAndElsewhere extends Held {
        public SenderAndElsewhere() {
            f.begin(null, null, 0, 60);
            f.retain(); // handed to a receive queue of another thread
        }

        @Actor
        public void sender(II_Result r) {
            r.r1 = f.releaseOwn() ? 1 : 0;
        }

        @Actor
        public void elsewhere() {
            f.release();
        }

        @Arbiter
        public void arbiter(II_Result r) {
            r.r2 = ended.get();
        }
    }

    @JCStressTest
    @Description("the sender and a receive queue of its thread let go while a holder elsewhere does: the frame ends once")
    @Outcome(id = "1, 0", expect = Expect.ACCEPTABLE, desc = "the sender's release ended it")
    @Outcome(id = "0, 1", expect = Expect.ACCEPTABLE, desc = "a receive queue's release ended it (this thread's or the other's)")
    @Outcome(id = "0, 0", expect = Expect.FORBIDDEN, desc = "nobody ended it")
    @Outcome(expect = Expect.FORBIDDEN, desc = "ended more than once")
    @State
    public static class SenderLocalAndElsewhere extends Held {
        public SenderLocalAndElsewhere() {
            f.begin(null, null, 0, 60);
            f.retainHere(); // a receive queue of the sending thread
            f.retain();     // and one of another thread
        }

        @Actor
        public void sendingThread(II_Result r) {
            boolean own = f.releaseOwn();
            f.releaseHere(); // this thread's receive queue copied it (reports through the owner)
            r.r1 = own ? 1 : 0;
        }

        @Actor
        public void elsewhere() {
            f.release();
        }

        @Arbiter
        public void arbiter(II_Result r) {
            r.r2 = ended.get();
        }
    }

    @JCStressTest
    @Description("the side that ends the frame sees what the holder elsewhere did before letting go")
    @Outcome(id = "true, 42", expect = Expect.ACCEPTABLE, desc = "the sender ended it and sees the other's copy done")
    @Outcome(id = "false, 0", expect = Expect.ACCEPTABLE, desc = "the other holder ended it (the sender did not look)")
    @Outcome(expect = Expect.FORBIDDEN, desc = "the sender's buffer would go back while the copy out of it is not seen as done")
    @State
    public static class EndSeesTheCopy extends Held {
        public EndSeesTheCopy() {
            f.begin(null, null, 0, 60);
            f.retain();
        }

        @Actor
        public void sender(ZI_Result r) {
            boolean done = f.releaseOwn();
            r.r1 = done;
            r.r2 = done ? copied : 0;
        }

        @Actor
        public void elsewhere() {
            copied = 42;
            f.release();
        }
    }
}
