# Sourced by bin/ launchers after jdk25.sh: builds examples/target/examples.jar and its
# dependencies if missing (or older than the sources), then sets JVIRTIO_CLASSPATH.
jar="$root/examples/target/examples.jar"
if [ ! -f "$jar" ] || [ -n "$(find "$root" -path "$root/*/src/main/*" -newer "$jar" -print -quit 2>/dev/null)" ]; then
  echo "jvirtio: building the examples jar (once; takes a minute)..." >&2
  (cd "$root" && ./mvnw -q -B -DskipTests -pl examples -am package >&2) || {
    echo "jvirtio: build failed; run bin/build -pl examples -am package to see why" >&2
    exit 2
  }
  # The jar plugin leaves an up-to-date examples.jar alone even when a module below it changed:
  # mark it as built now, or every launch would rebuild.
  touch "$jar"
fi
JVIRTIO_CLASSPATH="$jar:$root/examples/target/lib/*"
