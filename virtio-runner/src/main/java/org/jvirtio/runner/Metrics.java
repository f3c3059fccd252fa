package org.jvirtio.runner;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.jvirtio.api.QueueStats;

/**
 * {@code --metrics HOST:PORT}: the devices' counters in the Prometheus text format (and
 * OpenMetrics, when the scraper asks for it), through Micrometer's Prometheus registry, served by
 * the JDK's HTTP server at {@code /metrics}.
 *
 * <p>Nothing is counted here: every meter is a function over the counters the queue engine keeps
 * anyway ({@link QueueStats}, the transport's connection count), read when scraped. So the data
 * path gains no allocation, lock or store for metrics.
 */
final class Metrics implements AutoCloseable {
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    /** The HTTP endpoint ({@code --metrics}), or null for a registry the control socket alone answers from. */
    private final HttpServer server;
    private final ExecutorService executor;

    private Metrics(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
    }

    /** Meters without an HTTP endpoint of their own: scraped through the control socket's {@code GET /metrics}. */
    static Metrics withoutEndpoint() {
        return new Metrics(null, null);
    }

    /** Parses {@code HOST:PORT} ({@code [::1]:PORT} for IPv6); one line when it is not that. */
    static InetSocketAddress parseAddress(String s) {
        int colon = s.lastIndexOf(':');
        if (colon <= 0 || colon == s.length() - 1) {
            throw new IllegalArgumentException("--metrics " + s + " is not HOST:PORT (e.g. 127.0.0.1:9400)");
        }
        String host = s.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--metrics " + s + ": the port is not a number");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--metrics " + s + ": the port must be in [0, 65535]");
        }
        return new InetSocketAddress(host, port);
    }

    /**
     * Binds the endpoint's address (before any device listens, so a busy port refuses the start
     * with one line and nothing served); {@link #serve} starts answering.
     */
    static Metrics bind(String hostPort) throws IOException {
        InetSocketAddress address = parseAddress(hostPort);
        if (address.isUnresolved()) {
            throw new IOException("--metrics: cannot resolve " + address.getHostString());
        }
        HttpServer server;
        try {
            server = HttpServer.create(address, 16);
        } catch (IOException e) {
            throw new IOException("--metrics " + hostPort + ": cannot listen: " + e.getMessage(), e);
        }
        ExecutorService executor = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform().daemon().name("jvirtio-metrics").unstarted(r));
        server.setExecutor(executor);
        return new Metrics(server, executor);
    }

    /** Registers the process's meters (JVM memory and threads, the number of devices) and starts answering scrapes at /metrics. */
    void serve(DeviceSet devices) {
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        Gauge.builder("jvirtio.devices", devices, DeviceSet::size).description("Devices this process serves").register(registry);
        FunctionCounter.builder("jvirtio.devices.removed", devices, DeviceSet::removedCount)
                .description("Devices removed through the control socket").register(registry);
        Gauge.builder("jvirtio.frontends.connected", devices,
                        d -> d.entries().stream().filter(e -> e.served().running().transport().connected()).count())
                .description("Devices a front-end is connected to now").register(registry);
        registry.getPrometheusRegistry().register(new LatencyHistogram(devices));
        if (server != null) {
            server.createContext("/metrics", this::scrape);
            server.start();
        }
    }

    /** Whether it has an HTTP endpoint of its own. */
    boolean hasEndpoint() {
        return server != null;
    }

    /** Where it answers (the port chosen for HOST:0). */
    String url() {
        InetSocketAddress a = server.getAddress();
        String host = a.getAddress().getHostAddress();
        return "http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort() + "/metrics";
    }

    /** Registers one device's meters, labelled with its id, name and socket; {@link #remove} takes them away with it. */
    List<Meter> register(String id, Serving.Served<?> d) {
        List<Meter> meters = new java.util.ArrayList<>();
        VhostUserRunner.Running<?> r = d.running();
        Tags device = Tags.of("id", id, "device", d.name(), "socket", d.options().socket.toAbsolutePath().toString());
        meters.add(FunctionCounter.builder("jvirtio.frontend.connections", r, x -> x.transport().connectionCount())
                .description("Front-ends that connected (a reconnect counts again)").tags(device).register(registry));
        int queues = r.transport().queueStats().length;
        for (int q = 0; q < queues; q++) {
            int qi = q;
            Tags t = device.and("queue", Integer.toString(q));
            meters.add(FunctionCounter.builder("jvirtio.queue.requests", r, x -> stats(x, qi).requests())
                    .description("Requests (chains) the queue served").tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.bytes", r, x -> stats(x, qi).bytes())
                    .description("Bytes the queue's requests moved").baseUnit("bytes").tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.errors", r, x -> stats(x, qi).errors())
                    .description("Requests that failed (an error status to the guest)").tags(t).register(registry));
            for (QueueStats.ErrorKind kind : QueueStats.ErrorKind.values()) {
                meters.add(FunctionCounter.builder("jvirtio.queue.errors.by.kind", r, x -> stats(x, qi).errors(kind))
                        .description("Requests that failed, by kind: io (the backend failed), unsupported, malformed (a chain the device cannot use), dropped")
                        .tags(t.and("kind", kind.label())).register(registry));
            }
            meters.add(FunctionCounter.builder("jvirtio.queue.bytes.to.guest", r, x -> stats(x, qi).bytesToGuest())
                    .description("Bytes the queue's requests wrote into guest memory (disk reads, received frames; part of jvirtio_queue_bytes_total)")
                    .tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.rests", r, x -> stats(x, qi).rests())
                    .description("Times the device turned the queue's buffers away for now (NOT_NOW)").tags(t).register(registry));
            meters.add(Gauge.builder("jvirtio.queue.in.flight", r, x -> stats(x, qi).inFlight())
                    .description("Requests taken and not yet completed").tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.wakeups", r, x -> stats(x, qi).wakeups())
                    .description("Times the queue's thread woke to serve it (a kick, a resume)").tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.poll.hits", r, x -> stats(x, qi).pollHits())
                    .description("Times busy-polling found requests before the queue slept").tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.ring.violations", r, x -> stats(x, qi).violations())
                    .description("Times the driver broke the ring (the device then needed a reset)").tags(t).register(registry));
            meters.add(FunctionCounter.builder("jvirtio.queue.resubmitted", r, x -> stats(x, qi).resubmitted())
                    .description("Requests resubmitted after a backend restart (left in flight by the one before)").tags(t).register(registry));
        }
        return meters;
    }

    /** Takes a removed device's meters out of the exposition. */
    void remove(List<Meter> meters) {
        for (Meter m : meters) {
            registry.remove(m);
        }
    }

    /**
     * {@code jvirtio_queue_request_latency_seconds}: each queue's request latency histogram, a
     * Prometheus classic histogram built when scraped from the buckets the queue engine keeps
     * ({@link QueueStats#addLatency}: powers of two from 1 us to 4.2 s). Micrometer has no meter
     * over buckets counted elsewhere, so this goes to the Prometheus registry beneath it.
     */
    private static final class LatencyHistogram implements io.prometheus.metrics.model.registry.Collector {
        private static final double[] BOUNDS = new double[QueueStats.BUCKETS];

        static {
            for (int i = 0; i < BOUNDS.length; i++) {
                BOUNDS[i] = QueueStats.bucketBoundSeconds(i);
            }
        }

        private final DeviceSet devices;

        LatencyHistogram(DeviceSet devices) {
            this.devices = devices;
        }

        @Override
        public String getPrometheusName() {
            return "jvirtio_queue_request_latency_seconds";
        }

        @Override
        public io.prometheus.metrics.model.snapshots.MetricSnapshot collect() {
            var h = io.prometheus.metrics.model.snapshots.HistogramSnapshot.builder().name(getPrometheusName())
                    .help("Time from taking a request from the ring to completing it (clock read per batch)");
            for (DeviceSet.Entry e : devices.entries()) {
                Serving.Served<?> d = e.served();
                QueueStats[] all = d.running().transport().queueStats();
                for (int q = 0; q < all.length; q++) {
                    long[] counts = new long[QueueStats.BUCKETS];
                    for (int i = 0; i < counts.length; i++) {
                        counts[i] = all[q].latencyBucket(i);
                    }
                    h.dataPoint(io.prometheus.metrics.model.snapshots.HistogramSnapshot.HistogramDataPointSnapshot.builder()
                            .classicHistogramBuckets(io.prometheus.metrics.model.snapshots.ClassicHistogramBuckets.of(BOUNDS, counts))
                            .sum(all[q].latencySumNanos() / 1e9)
                            .labels(io.prometheus.metrics.model.snapshots.Labels.of("id", e.id(), "device", d.name(),
                                    "socket", d.options().socket.toAbsolutePath().toString(), "queue", Integer.toString(q)))
                            .build());
                }
            }
            return h.build();
        }
    }

    private static QueueStats stats(VhostUserRunner.Running<?> r, int q) {
        return r.transport().queueStats()[q];
    }

    /** The exposition's content type for a scraper that sends {@code accept}: OpenMetrics when it asks for it. */
    static String contentType(String accept) {
        boolean openMetrics = accept != null && accept.contains("application/openmetrics-text");
        return openMetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8";
    }

    /** The exposition in {@code contentType} (from {@link #contentType}). */
    String scrape(String contentType) {
        return registry.scrape(contentType);
    }

    private void scrape(HttpExchange ex) throws IOException {
        try (ex) {
            if (!"GET".equals(ex.getRequestMethod()) && !"HEAD".equals(ex.getRequestMethod())) {
                ex.sendResponseHeaders(405, -1);
                return;
            }
            String contentType = contentType(ex.getRequestHeaders().getFirst("Accept"));
            byte[] body = scrape(contentType).getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", contentType);
            if ("HEAD".equals(ex.getRequestMethod())) {
                ex.sendResponseHeaders(200, -1);
                return;
            }
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(body);
            }
        }
    }

    @Override
    public void close() {
        if (server != null) {
            server.stop(0);
            executor.shutdownNow();
        }
        registry.close();
    }
}
