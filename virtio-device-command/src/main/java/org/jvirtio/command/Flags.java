package org.jvirtio.command;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.IntConsumer;
import java.util.function.LongConsumer;

/**
 * The flags of one backend command, declared in code by the runner ({@link RunnerOptions}) and the
 * device ({@link DeviceCommand#flags}), parsed once and rendered as {@code --help}.
 *
 * <p>Each flag is declared with the code that takes its value, typically a lambda that sets a
 * field: {@code flags.integer("--queues", "N", "Request queues.", 1, v -> queues = v)}. A flag
 * with a default gets it before parsing, so the field always holds the value in force, and the
 * help says "(default: 1)". Values are written {@code --name VALUE} or {@code --name=VALUE}; a
 * switch ({@link #toggle}) takes none. A value that does not convert, an unknown flag, a flag
 * given twice, a missing value or a missing required flag is a {@link FlagException} whose message
 * is one line naming the flag.
 *
 * <p>Why not picocli, which the demos and tools use: a backend is started by QEMU's
 * {@code reconnect} and by a supervisor, one per VM, and its start time counts (issue 13).
 * picocli's classes are Java 5 class files, which the JDK's ahead-of-time cache cannot hold, and
 * building its model reflectively took half a second of a backend's start on one CPU. This
 * class is what a backend's command line needs, without reflection.
 */
public final class Flags {
    /** A flag's value could not be used; the message is one line naming the flag. */
    public static final class FlagException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        public FlagException(String message) {
            super(message);
        }
    }

    /** One declared flag. */
    public static final class Flag {
        private final String name;
        private final String label;
        private final String description;
        private final String defaultText;
        private final Consumer<String> apply;
        private final String section;
        private boolean required;
        private boolean given;

        private Flag(String name, String label, String description, String defaultText, Consumer<String> apply, String section) {
            this.name = name;
            this.label = label;
            this.description = description;
            this.defaultText = defaultText;
            this.apply = apply;
            this.section = section;
        }

        /** The command refuses to start without this flag. */
        public Flag required() {
            required = true;
            return this;
        }

        /** The flag's name, {@code --queues}. */
        public String name() {
            return name;
        }

        /** Whether the command line gave this flag (a default does not count). */
        public boolean given() {
            return given;
        }

        boolean takesValue() {
            return label != null;
        }
    }

    private final Map<String, Flag> byName = new LinkedHashMap<>();
    private String section = "Options";

    /** Flags declared after this are listed under {@code title} in the help. */
    public Flags section(String title) {
        section = title;
        return this;
    }

    /** A text flag; {@code defaultValue} may be null (the flag is then not set unless given). */
    public Flag string(String name, String label, String description, String defaultValue, Consumer<String> to) {
        return add(name, label, description, defaultValue, to);
    }

    /** A flag whose value is a path; not set unless given. */
    public Flag path(String name, String label, String description, Consumer<Path> to) {
        return value(name, label, description, null, text -> {
            try {
                return Path.of(text);
            } catch (java.nio.file.InvalidPathException e) {
                throw new FlagException(name + ": '" + text + "' is not a path (" + e.getReason() + ")");
            }
        }, to);
    }

    /** A decimal {@code int} flag. */
    public Flag integer(String name, String label, String description, int defaultValue, IntConsumer to) {
        return add(name, label, description, Integer.toString(defaultValue), text -> to.accept(parseInt(name, text)));
    }

    /** A decimal {@code long} flag. */
    public Flag longInteger(String name, String label, String description, long defaultValue, LongConsumer to) {
        return add(name, label, description, Long.toString(defaultValue), text -> to.accept(parseLong(name, text)));
    }

    /**
     * A flag of any type: {@code parse} converts the text (throwing {@link IllegalArgumentException}
     * with a one-line message for a bad value) and {@code to} takes the result.
     */
    public <T> Flag value(String name, String label, String description, String defaultValue, Function<String, T> parse, Consumer<T> to) {
        return add(name, label, description, defaultValue, text -> to.accept(parse.apply(text)));
    }

    /** A switch without a value: {@code to} runs when it is given. */
    public Flag toggle(String name, String description, Runnable to) {
        return add(name, null, description, null, text -> to.run());
    }

    private Flag add(String name, String label, String description, String defaultValue, Consumer<String> apply) {
        if (!name.startsWith("--") || name.length() < 3 || name.contains("=") || name.equals("--help")) {
            throw new IllegalArgumentException("a flag is named --something (not --help): " + name);
        }
        if (label != null && label.isBlank()) {
            throw new IllegalArgumentException(name + ": the value's label is blank");
        }
        Flag f = new Flag(name, label, description, defaultValue, apply, section);
        if (byName.putIfAbsent(name, f) != null) {
            throw new IllegalArgumentException(name + " is declared twice");
        }
        return f;
    }

    /** The declared flags, in order. */
    public List<Flag> all() {
        return List.copyOf(byName.values());
    }

    /** Whether {@code args} ask for help ({@code -h} or {@code --help} in a flag's place). */
    public boolean asksForHelp(List<String> args) {
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("-h") || a.equals("--help")) {
                return true;
            }
            Flag f = byName.get(a);
            if (f != null && f.takesValue()) {
                i++; // "--serial --help" names a serial
            }
        }
        return false;
    }

    /**
     * Where this command's part of {@code args} ends: the index of the first {@code separator}
     * from {@code from} on that stands in a flag's place (not a flag's value: {@code --serial +}
     * names a serial), or {@code args.size()}.
     */
    public int end(List<String> args, int from, String separator) {
        for (int i = from; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals(separator)) {
                return i;
            }
            Flag f = byName.get(a);
            if (f != null && f.takesValue()) {
                i++;
            }
        }
        return args.size();
    }

    /**
     * Applies the defaults, then {@code args} in order; then checks that every required flag was
     * given.
     *
     * @throws FlagException naming the first problem; what was applied before it stays applied
     */
    public void parse(List<String> args) {
        for (Flag f : byName.values()) {
            f.given = false;
            if (f.defaultText != null) {
                f.apply.accept(f.defaultText);
            }
        }
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (!a.startsWith("--")) {
                throw new FlagException("unexpected argument '" + a + "'");
            }
            int eq = a.indexOf('=');
            String name = eq < 0 ? a : a.substring(0, eq);
            Flag f = byName.get(name);
            if (f == null) {
                throw new FlagException("unknown flag " + name + suggestion(name));
            }
            if (f.given) {
                throw new FlagException(name + " is given twice");
            }
            String text;
            if (!f.takesValue()) {
                if (eq >= 0) {
                    throw new FlagException(name + " takes no value");
                }
                text = "";
            } else if (eq >= 0) {
                text = a.substring(eq + 1);
            } else if (i + 1 < args.size()) {
                text = args.get(++i);
            } else {
                throw new FlagException(name + " needs a value (" + f.label + ")");
            }
            f.given = true;
            try {
                f.apply.accept(text);
            } catch (FlagException e) {
                throw e;
            } catch (IllegalArgumentException e) {
                throw new FlagException(e.getMessage() != null && e.getMessage().contains(name) ? e.getMessage()
                        : name + ": " + e.getMessage());
            }
        }
        for (Flag f : byName.values()) {
            if (f.required && !f.given) {
                throw new FlagException("missing " + f.name + " " + f.label);
            }
        }
    }

    private String suggestion(String name) {
        for (String known : byName.keySet()) {
            if (known.startsWith(name) || name.startsWith(known)) {
                return " (did you mean " + known + "?)";
            }
        }
        return "";
    }

    /** The flags' part of {@code --help}: a section per heading, each flag with its wrapped description. */
    public String help() {
        StringBuilder b = new StringBuilder();
        String current = null;
        for (Flag f : byName.values()) {
            if (!f.section.equals(current)) {
                current = f.section;
                b.append(b.isEmpty() ? "" : "\n").append(current).append(":\n");
            }
            String left = "  " + f.name + (f.takesValue() ? " " + f.label : "");
            String text = f.description;
            if (f.defaultText != null && !f.defaultText.isEmpty() && !text.contains("(default")) {
                text += " (default: " + f.defaultText + ")";
            }
            if (f.required) {
                text += " Required.";
            }
            appendWrapped(b, left, text, COLUMN);
        }
        return b.toString();
    }

    public static final int COLUMN = 28;
    static final int WIDTH = 100;

    /** {@code left} then {@code text} from {@code column} on, wrapped at {@link #WIDTH}. */
    public static void appendWrapped(StringBuilder b, String left, String text, int column) {
        b.append(left);
        int col = left.length();
        if (col >= column - 1) {
            b.append('\n');
            col = 0;
        }
        b.append(" ".repeat(column - col));
        col = column;
        for (String word : text.split(" ")) {
            if (word.isEmpty()) {
                continue;
            }
            if (col > column && col + 1 + word.length() > WIDTH) {
                b.append('\n').append(" ".repeat(column));
                col = column;
            } else if (col > column) {
                b.append(' ');
                col++;
            }
            b.append(word);
            col += word.length();
        }
        b.append('\n');
    }

    static int parseInt(String name, String text) {
        try {
            return Integer.parseInt(text.trim());
        } catch (NumberFormatException e) {
            throw new FlagException(name + ": '" + text + "' is not a whole number");
        }
    }

    static long parseLong(String name, String text) {
        try {
            return Long.parseLong(text.trim());
        } catch (NumberFormatException e) {
            throw new FlagException(name + ": '" + text + "' is not a whole number");
        }
    }

    /** The arguments as a list (a convenience for callers holding an array). */
    public static List<String> list(String[] args, int from) {
        List<String> l = new ArrayList<>(args.length);
        for (int i = from; i < args.length; i++) {
            l.add(args[i]);
        }
        return l;
    }
}
