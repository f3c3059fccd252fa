package org.jvirtio.testkit;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real single-node Ceph cluster for tests: one ceph-mon and one memstore ceph-osd on 127.0.0.1
 * with a free port and cephx, under a directory of the test's, started by the project's
 * {@code bin/ceph-cluster} (about 2 s) and stopped by pid on {@link #close()}.
 *
 * <p>Tests call {@link #missing()} first and skip with its answer when the Ceph packages are not
 * installed ({@code .ci/run} installs them).
 */
public final class CephCluster implements AutoCloseable {
    private final Path dir;
    private final Path script;
    private final Path conf;

    private CephCluster(Path dir, Path script) {
        this.dir = dir;
        this.script = script;
        this.conf = dir.resolve("ceph.conf");
    }

    /** Why a cluster cannot start here, or null when it can. */
    public static String missing() {
        List<String> absent = new ArrayList<>();
        for (String b : new String[] {"ceph-mon", "ceph-osd", "ceph", "rbd", "ceph-authtool", "monmaptool"}) {
            if (!onPath(b)) {
                absent.add(b);
            }
        }
        if (!Files.exists(Path.of("/usr/lib/x86_64-linux-gnu/librbd.so.1")) && !Files.exists(Path.of("/usr/lib/aarch64-linux-gnu/librbd.so.1"))) {
            absent.add("librbd.so.1");
        }
        if (script() == null) {
            absent.add("bin/ceph-cluster");
        }
        return absent.isEmpty() ? null : "Ceph is not installed (missing " + String.join(", ", absent)
                + "; apt-get install ceph-mon ceph-osd ceph-common librbd1)";
    }

    private static boolean onPath(String b) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (Files.isExecutable(Path.of(d, b))) {
                return true;
            }
        }
        return Files.isExecutable(Path.of("/usr/bin", b)) || Files.isExecutable(Path.of("/usr/sbin", b));
    }

    /** The project's bin/ceph-cluster, found above the working directory. */
    static Path script() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            Path s = p.resolve("bin/ceph-cluster");
            if (Files.isExecutable(s)) {
                return s;
            }
            p = p.getParent();
        }
        return null;
    }

    /** Starts a cluster under {@code dir} with an RBD pool named {@code rbd}. */
    public static CephCluster start(Path dir) throws IOException, InterruptedException {
        Path script = script();
        if (script == null) {
            throw new IOException("bin/ceph-cluster not found above " + Path.of("").toAbsolutePath());
        }
        CephCluster c = new CephCluster(dir, script);
        try {
            c.run(120, script.toString(), "start", dir.toString(), "rbd");
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    /** The cluster's ceph.conf (client.admin's key is in the keyring it names). */
    public Path conf() {
        return conf;
    }

    public Path dir() {
        return dir;
    }

    /** Runs {@code rbd -c CONF args...} and returns its standard output. */
    public String rbd(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("rbd", "-c", conf.toString()));
        cmd.addAll(List.of(args));
        return run(60, cmd.toArray(String[]::new));
    }

    /** Runs {@code ceph -c CONF args...} and returns its standard output. */
    public String ceph(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("ceph", "-c", conf.toString(), "--connect-timeout", "15"));
        cmd.addAll(List.of(args));
        return run(60, cmd.toArray(String[]::new));
    }

    /** Creates an image of {@code size} (rbd's size syntax: 64M, 1G). */
    public void createImage(String poolAndName, String size) throws IOException, InterruptedException {
        rbd("create", "--size", size, poolAndName);
    }

    /** Freezes the OSD (SIGSTOP): every operation waits until {@link #continueOsd()}. */
    public void stopOsd() throws IOException, InterruptedException {
        run(10, script.toString(), "osd-stop", dir.toString());
    }

    public void continueOsd() throws IOException, InterruptedException {
        run(10, script.toString(), "osd-cont", dir.toString());
    }

    private String run(int seconds, String... cmd) throws IOException, InterruptedException {
        Path out = Files.createTempFile(dir.getParent() != null ? dir.getParent() : dir, "ceph-out", ".txt");
        try {
            Files.createDirectories(dir);
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + " did not finish in " + seconds + " s: "
                        + Files.readString(out, StandardCharsets.UTF_8));
            }
            String text = Files.readString(out, StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IOException(String.join(" ", cmd) + " exited with " + p.exitValue() + ": " + text);
            }
            return text;
        } finally {
            Files.deleteIfExists(out);
        }
    }

    @Override
    public void close() {
        try {
            run(30, script.toString(), "stop", dir.toString());
        } catch (IOException | InterruptedException e) {
            // best effort: the daemons' pid files are in dir
        }
    }
}
