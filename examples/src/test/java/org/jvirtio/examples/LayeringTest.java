package org.jvirtio.examples;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.xml.parsers.DocumentBuilderFactory;

import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The module edges docs/ARCHITECTURE.md promises, checked on every build: each module of the
 * reactor belongs to a layer, and its main dependencies (the pom's non-test ones, and the
 * {@code requires} of its module-info) reach only the layers that layer may use. In particular
 * transports and devices never depend on each other, devices depend on virtio-api and the
 * device-command SPI only (and on other devices of their family), and nothing depends on
 * examples, in any scope. A new module fails this test until it is given its layer here.
 */
public class LayeringTest {
    enum Layer { API, CORE, SPI, TRANSPORT, JOIN, DEVICE, RUNNER, TESTKIT, TOP }

    /** Every module of the build and its layer. */
    static final Map<String, Layer> LAYERS = Map.ofEntries(
            Map.entry("virtio-api", Layer.API),
            Map.entry("virtio-ring", Layer.CORE),
            Map.entry("virtio-device-host", Layer.CORE),
            Map.entry("virtio-device-command", Layer.SPI),
            Map.entry("virtio-transport-vhostuser", Layer.TRANSPORT),
            Map.entry("virtio-transport-mmio", Layer.TRANSPORT),
            Map.entry("virtio-vhostuser-proxy", Layer.JOIN),
            Map.entry("virtio-blk", Layer.DEVICE),
            Map.entry("virtio-blk-dataplane", Layer.DEVICE),
            Map.entry("virtio-blk-rbd", Layer.DEVICE),
            Map.entry("virtio-rng", Layer.DEVICE),
            Map.entry("virtio-net", Layer.DEVICE),
            Map.entry("virtio-runner", Layer.RUNNER),
            Map.entry("virtio-testkit", Layer.TESTKIT),
            Map.entry("virtio-transport-testkit", Layer.TESTKIT),
            Map.entry("examples", Layer.TOP),
            Map.entry("virtio-ring-jcstress", Layer.TOP),
            Map.entry("benchmarks", Layer.TOP));

    /** What each layer's main code may depend on (besides modules of its own layer where said). */
    static final Map<Layer, Set<Layer>> MAY_USE = Map.of(
            Layer.API, Set.of(),
            Layer.CORE, Set.of(Layer.API),
            Layer.SPI, Set.of(Layer.API),
            Layer.TRANSPORT, Set.of(Layer.API, Layer.CORE),
            Layer.JOIN, Set.of(Layer.API, Layer.CORE, Layer.TRANSPORT),
            Layer.DEVICE, Set.of(Layer.API, Layer.SPI, Layer.DEVICE),
            Layer.RUNNER, Set.of(Layer.API, Layer.CORE, Layer.SPI, Layer.TRANSPORT),
            Layer.TESTKIT, Set.of(Layer.API, Layer.CORE, Layer.TRANSPORT, Layer.TESTKIT),
            Layer.TOP, Set.of(Layer.values()));

    /** The core modules do not use each other: the ring and the queue engine meet only in virtio-api's contracts. */
    static final Set<String> CORE_INDEPENDENT = Set.of("virtio-ring", "virtio-device-host");

    record Dependency(String artifact, String scope) {
    }

    @Test
    void everyModuleDependsOnlyOnWhatItsLayerMayUse() throws Exception {
        Path root = root();
        List<String> modules = modules(root);
        List<String> problems = new ArrayList<>();
        Map<String, String> moduleNames = new TreeMap<>(); // JPMS name -> artifact
        for (String m : modules) {
            String name = moduleName(root.resolve(m));
            if (name != null) {
                moduleNames.put(name, m);
            }
        }
        for (String m : modules) {
            Layer layer = LAYERS.get(m);
            if (layer == null) {
                problems.add(m + ": not given a layer in LayeringTest.LAYERS");
                continue;
            }
            List<String> uses = new ArrayList<>();
            for (Dependency d : dependencies(root.resolve(m).resolve("pom.xml"))) {
                if (d.artifact.equals("examples")) {
                    problems.add(m + " depends on examples (scope " + d.scope + "): nothing may");
                }
                if (!d.scope.equals("test")) {
                    uses.add(d.artifact);
                }
            }
            for (String required : requires(root.resolve(m))) {
                String artifact = moduleNames.get(required);
                if (artifact != null) {
                    uses.add(artifact);
                }
            }
            for (String used : uses) {
                Layer target = LAYERS.get(used);
                if (target == null) {
                    continue; // reported above
                }
                if (!MAY_USE.get(layer).contains(target)) {
                    problems.add(m + " (" + layer + ") depends on " + used + " (" + target + ")");
                }
                if (CORE_INDEPENDENT.contains(m) && CORE_INDEPENDENT.contains(used) && !used.equals(m)) {
                    problems.add(m + " depends on " + used + ": the ring and the queue engine stay independent");
                }
            }
        }
        assertEquals(List.of(), problems, "module edges (docs/ARCHITECTURE.md, \"Modules and dependencies\")");
        assertTrue(modules.size() >= 16, "the reactor's modules were read: " + modules);
    }

    /** Lines a main class may have: one job per class (issue 29 asked for about 450 at most). */
    static final int MAX_MAIN_CLASS_LINES = 460;

    /** A class that grows past the bound is split along its seams before it lands, not later. */
    @Test
    void noMainClassIsCrowded() throws Exception {
        Path root = root();
        List<String> crowded = new ArrayList<>();
        int files = 0;
        for (String m : modules(root)) {
            Path src = root.resolve(m).resolve("src/main/java");
            if (!Files.isDirectory(src)) {
                continue;
            }
            try (var walk = Files.walk(src)) {
                for (Path f : (Iterable<Path>) walk.filter(p -> p.toString().endsWith(".java"))::iterator) {
                    files++;
                    long lines;
                    try (var l = Files.lines(f)) {
                        lines = l.count();
                    }
                    if (lines > MAX_MAIN_CLASS_LINES) {
                        crowded.add(root.relativize(f) + ": " + lines + " lines");
                    }
                }
            }
        }
        assertTrue(files > 100, "the main sources were read: " + files + " files");
        assertEquals(List.of(), crowded, "main classes over " + MAX_MAIN_CLASS_LINES + " lines");
    }

    /** The directory of the root pom (the one that lists the modules): the repository, for tests that need its files. */
    public static Path root() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            Path pom = p.resolve("pom.xml");
            try {
                if (Files.exists(pom) && Files.readString(pom).contains("<modules>")) {
                    return p;
                }
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            p = p.getParent();
        }
        throw new IllegalStateException("no root pom above " + Path.of("").toAbsolutePath());
    }

    static List<String> modules(Path root) throws Exception {
        Document doc = parse(root.resolve("pom.xml"));
        List<String> out = new ArrayList<>();
        NodeList list = doc.getElementsByTagName("module");
        for (int i = 0; i < list.getLength(); i++) {
            out.add(list.item(i).getTextContent().trim());
        }
        return out;
    }

    /** The org.jvirtio dependencies a module's pom declares, with their scopes (compile unless said). */
    static List<Dependency> dependencies(Path pom) throws Exception {
        Document doc = parse(pom);
        List<Dependency> out = new ArrayList<>();
        Element project = doc.getDocumentElement();
        for (Node n = project.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (!(n instanceof Element e) || !e.getTagName().equals("dependencies")) {
                continue;
            }
            NodeList deps = e.getElementsByTagName("dependency");
            for (int i = 0; i < deps.getLength(); i++) {
                Element d = (Element) deps.item(i);
                if (!text(d, "groupId").equals("org.jvirtio")) {
                    continue;
                }
                String scope = text(d, "scope");
                out.add(new Dependency(text(d, "artifactId"), scope.isEmpty() ? "compile" : scope));
            }
        }
        return out;
    }

    private static final Pattern MODULE = Pattern.compile("^\\s*(?:open\\s+)?module\\s+([\\w.]+)", Pattern.MULTILINE);
    private static final Pattern REQUIRES = Pattern.compile("^\\s*requires\\s+(?:transitive\\s+|static\\s+)*([\\w.]+)\\s*;", Pattern.MULTILINE);

    static String moduleName(Path module) throws java.io.IOException {
        Path info = module.resolve("src/main/java/module-info.java");
        if (!Files.exists(info)) {
            return null;
        }
        Matcher m = MODULE.matcher(Files.readString(info));
        return m.find() ? m.group(1) : null;
    }

    static List<String> requires(Path module) throws java.io.IOException {
        Path info = module.resolve("src/main/java/module-info.java");
        List<String> out = new ArrayList<>();
        if (Files.exists(info)) {
            Matcher m = REQUIRES.matcher(Files.readString(info));
            while (m.find()) {
                out.add(m.group(1));
            }
        }
        return out;
    }

    private static Document parse(Path pom) throws Exception {
        return DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(pom.toFile());
    }

    private static String text(Element e, String tag) {
        NodeList l = e.getElementsByTagName(tag);
        return l.getLength() == 0 ? "" : l.item(0).getTextContent().trim();
    }
}
