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
    private final HttpServer server;
    private final ExecutorService executor;

    private Metrics(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
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

    /** Registers {@code devices}' meters and starts answering scrapes at /metrics. */
    void serve(List<Serving.Served<?>> devices) {
        register(devices);
        server.createContext("/metrics", this::scrape);
        server.start();
    }

    /** Where it answers (the port chosen for HOST:0). */
    String url() {
        InetSocketAddress a = server.getAddress();
        String host = a.getAddress().getHostAddress();
        return "http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort() + "/metrics";
    }

    private void register(List<Serving.Served<?>> devices) {
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        Gauge.builder("jvirtio.devices", devices, List::size).description("Devices this process serves").register(registry);
        for (Serving.Served<?> d : devices) {
            VhostUserRunner.Running<?> r = d.running();
            Tags device = Tags.of("device", d.name(), "socket", d.options().socket.toAbsolutePath().toString());
            FunctionCounter.builder("jvirtio.frontend.connections", r, x -> x.transport().connectionCount())
                    .description("Front-ends that connected (a reconnect counts again)").tags(device).register(registry);
            int queues = r.transport().queueStats().length;
            for (int q = 0; q < queues; q++) {
                int qi = q;
                Tags t = device.and("queue", Integer.toString(q));
                FunctionCounter.builder("jvirtio.queue.requests", r, x -> stats(x, qi).requests())
                        .description("Requests (chains) the queue served").tags(t).register(registry);
                FunctionCounter.builder("jvirtio.queue.bytes", r, x -> stats(x, qi).bytes())
                        .description("Bytes the queue's requests moved").baseUnit("bytes").tags(t).register(registry);
                FunctionCounter.builder("jvirtio.queue.errors", r, x -> stats(x, qi).errors())
                        .description("Requests that failed (an error status to the guest)").tags(t).register(registry);
                FunctionCounter.builder("jvirtio.queue.rests", r, x -> stats(x, qi).rests())
                        .description("Times the device turned the queue's buffers away for now (NOT_NOW)").tags(t).register(registry);
                Gauge.builder("jvirtio.queue.in.flight", r, x -> stats(x, qi).inFlight())
                        .description("Requests taken and not yet completed").tags(t).register(registry);
            }
        }
    }

    private static QueueStats stats(VhostUserRunner.Running<?> r, int q) {
        return r.transport().queueStats()[q];
    }

    private void scrape(HttpExchange ex) throws IOException {
        try (ex) {
            if (!"GET".equals(ex.getRequestMethod()) && !"HEAD".equals(ex.getRequestMethod())) {
                ex.sendResponseHeaders(405, -1);
                return;
            }
            String accept = ex.getRequestHeaders().getFirst("Accept");
            boolean openMetrics = accept != null && accept.contains("application/openmetrics-text");
            String contentType = openMetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                    : "text/plain; version=0.0.4; charset=utf-8";
            byte[] body = registry.scrape(contentType).getBytes(StandardCharsets.UTF_8);
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
        server.stop(0);
        executor.shutdownNow();
        registry.close();
    }
}
