package org.jvirtio.benchmarks;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A/B of benchmark methods of several builds in one JVM, interleaved in chunks of about 2 ms, so
 * that a noisy machine's slow moments fall on every variant alike. Separate JMH runs of two jars
 * on these shared 2-core machines differ by 30% from one minute to the next; interleaved, the same
 * jar loaded twice agrees with itself within about 3%. Each variant's jar is loaded by a class
 * loader of its own (its own copy of every jvirtio class, compiled by the JIT separately), its
 * benchmark object is set up once, and its methods are called through reflection (a few ns per
 * call, the same for every variant; divide by the operations per call).
 *
 * <pre>
 * java -cp benchmarks.jar org.jvirtio.benchmarks.Interleaved CLASS METHODS PARAMS SECONDS OPS VARIANT...
 *   CLASS    a benchmark class, e.g. PackedQueueBenchmark (in org.jvirtio.benchmarks)
 *   METHODS  comma-separated, e.g. batch32,driverOnly32
 *   PARAMS   public fields to set, k=v,k=v (or "-" for none), e.g. layout=direct1,inflight=false
 *   SECONDS  measured time, shared by all variants (after a warm-up of about 1.5 s each)
 *   OPS      operations per call (32 for batch32: the result is ns per operation)
 *   VARIANT  JAR[#CLASS][@k=v,...]: a jar, optionally another class and more fields for it
 * </pre>
 *
 * It prints, per variant and method, the 10th and 25th percentiles and the median of the chunks'
 * ns per operation. The low percentiles are the figures to compare: noise only adds time.
 */
public final class Interleaved {
    private static final long CHUNK_NS = 2_000_000;

    private Interleaved() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 6) {
            usage("expected at least 6 arguments, got " + args.length);
        }
        String defaultClass = args[0];
        String[] methods = args[1].split(",");
        String params = args[2].equals("-") ? "" : args[2];
        double seconds = number(args[3], "SECONDS");
        int ops = (int) number(args[4], "OPS");
        List<String> names = new ArrayList<>();
        List<Object> targets = new ArrayList<>();
        List<Method> calls = new ArrayList<>();
        for (int i = 5; i < args.length; i++) {
            String spec = args[i];
            int at = spec.indexOf('@');
            String extra = at < 0 ? "" : spec.substring(at + 1);
            String jarAndClass = at < 0 ? spec : spec.substring(0, at);
            int hash = jarAndClass.indexOf('#');
            Path jar = Path.of(hash < 0 ? jarAndClass : jarAndClass.substring(0, hash));
            String className = hash < 0 ? defaultClass : jarAndClass.substring(hash + 1);
            if (!Files.isRegularFile(jar)) {
                usage("no such jar: " + jar);
            }
            URLClassLoader loader = new URLClassLoader(new URL[] {jar.toUri().toURL()}, ClassLoader.getPlatformClassLoader());
            Class<?> c = loader.loadClass(className.contains(".") ? className : "org.jvirtio.benchmarks." + className);
            Object o = c.getDeclaredConstructor().newInstance();
            for (String kv : (params + "," + extra).split(",")) {
                if (!kv.isBlank()) {
                    set(c, o, kv);
                }
            }
            c.getMethod("setUp").invoke(o);
            for (String m : methods) {
                names.add(jar.getFileName() + "#" + c.getSimpleName() + (extra.isEmpty() ? "" : "@" + extra) + ":" + m);
                targets.add(o);
                calls.add(c.getMethod(m));
            }
        }
        int v = calls.size();
        long[] perChunk = new long[v];
        Arrays.fill(perChunk, 1000);
        for (int w = 0; w < 40; w++) { // warm-up, interleaved; sizes each variant's chunk to about 2 ms
            for (int i = 0; i < v; i++) {
                long t = chunk(calls.get(i), targets.get(i), perChunk[i]);
                perChunk[i] = Math.max(16, perChunk[i] * CHUNK_NS / Math.max(1, t));
            }
        }
        int chunks = Math.max(10, (int) (seconds * 1e9 / CHUNK_NS / v));
        double[][] r = new double[v][chunks];
        for (int k = 0; k < chunks; k++) {
            for (int j = 0; j < v; j++) {
                int i = (j + k) % v; // rotate the order too
                r[i][k] = (double) chunk(calls.get(i), targets.get(i), perChunk[i]) / perChunk[i] / ops;
            }
        }
        for (int i = 0; i < v; i++) {
            double[] s = r[i].clone();
            Arrays.sort(s);
            System.out.printf("%-64s p10 %8.2f  p25 %8.2f  median %8.2f ns/op  (%d chunks)%n", names.get(i), s[s.length / 10],
                    s[s.length / 4], s[s.length / 2], s.length);
        }
    }

    private static long chunk(Method m, Object o, long n) throws Exception {
        long t0 = System.nanoTime();
        for (long i = 0; i < n; i++) {
            m.invoke(o);
        }
        return System.nanoTime() - t0;
    }

    private static void set(Class<?> c, Object o, String kv) throws ReflectiveOperationException {
        int eq = kv.indexOf('=');
        if (eq <= 0) {
            usage("a parameter is k=v, not \"" + kv + "\"");
        }
        Field f;
        try {
            f = c.getField(kv.substring(0, eq));
        } catch (NoSuchFieldException e) {
            usage(c.getSimpleName() + " has no public field " + kv.substring(0, eq));
            return;
        }
        String value = kv.substring(eq + 1);
        if (f.getType() == boolean.class) {
            f.setBoolean(o, Boolean.parseBoolean(value));
        } else if (f.getType() == int.class) {
            f.setInt(o, (int) number(value, f.getName()));
        } else {
            f.set(o, value);
        }
    }

    private static double number(String s, String what) {
        try {
            double d = Double.parseDouble(s);
            if (d > 0) {
                return d;
            }
        } catch (NumberFormatException e) {
            // below
        }
        usage(what + " must be a positive number, not \"" + s + "\"");
        return 0;
    }

    private static void usage(String why) {
        System.err.println("interleaved: " + why);
        System.err.println("usage: Interleaved CLASS METHODS PARAMS|- SECONDS OPS JAR[#CLASS][@k=v,...]...");
        System.exit(2);
    }
}
