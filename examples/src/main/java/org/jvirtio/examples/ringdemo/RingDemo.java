package org.jvirtio.examples.ringdemo;

import java.util.concurrent.Callable;

import org.jvirtio.examples.cli.Cli;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/demo}: a driver and a device exchanging requests through one split ring in a real
 * shared mapping, with eventfd kicks and calls; prints requests per second.
 */
@Command(name = "ring-demo", mixinStandardHelpOptions = true,
        description = "A driver thread and a device thread exchange requests through a split virtqueue in shared memory.")
public final class RingDemo implements Callable<Integer> {
    @Option(names = "--requests", defaultValue = "2000000", description = "Requests to exchange (default: ${DEFAULT-VALUE}).")
    long requests;

    @Option(names = "--queue-size", defaultValue = "256", description = "Queue size, a power of two up to 32768 (default: ${DEFAULT-VALUE}).")
    int queueSize;

    @Option(names = "--no-event-idx", description = "Use the NO_NOTIFY / NO_INTERRUPT flags instead of EVENT_IDX.")
    boolean noEventIdx;

    @Option(names = "--packed", description = "A packed ring (VIRTIO 1.3, 2.8) instead of a split one.")
    boolean packed;

    @Option(names = "--runs", defaultValue = "3", description = "Runs to make; the median is reported (default: ${DEFAULT-VALUE}).")
    int runs;

    @Override
    public Integer call() throws Exception {
        if (requests < 1) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--requests must be at least 1, got " + requests);
        }
        if (queueSize < 2 || queueSize > 32768 || Integer.bitCount(queueSize) != 1) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--queue-size must be a power of two in [2, 32768], got " + queueSize);
        }
        if (runs < 1) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--runs must be at least 1, got " + runs);
        }
        RingPingPong pingPong = new RingPingPong(queueSize, !noEventIdx, 10_000, packed);
        double[] rates = new double[runs];
        for (int i = 0; i < runs; i++) {
            RingPingPong.Result r = pingPong.run(requests);
            rates[i] = r.requestsPerSecond();
            System.out.printf("run %d: %,d requests in %.3f s = %,.0f requests/s (kicks %,d, interrupts %,d, device wake-ups %,d)%n",
                    i + 1, r.requests(), r.nanos() / 1e9, rates[i], r.kicks(), r.interrupts(), r.deviceWakeups());
        }
        java.util.Arrays.sort(rates);
        System.out.printf("median: %,.0f requests/s over %d runs; every request completed exactly once%n", rates[runs / 2], runs);
        return 0;
    }

    /** The command line with jvirtio's convention: a bad flag is one line on stderr and exit code 2. */
    static CommandLine commandLine() {
        return Cli.of("ring-demo", new RingDemo());
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
