# Sourced by bin/ launchers after jdk25.sh: builds the jars if missing (or older than the
# sources), then sets JVIRTIO_CLASSPATH: examples.jar, its dependencies, and every other jvirtio
# module's jar (so a device module added to the build, virtio-rng say, is found by the runner
# without being a dependency of examples), then $JVIRTIO_DEVICE_PATH (a user's device jars).
jar="$root/examples/target/examples.jar"
if [ ! -f "$jar" ] || [ -n "$(find "$root"/*/src/main -newer "$jar" -print -quit 2>/dev/null)" ]; then
  echo "jvirtio: building the jars (once; takes a minute)..." >&2
  (cd "$root" && ./mvnw -q -B -DskipTests -pl '!virtio-ring-jcstress,!benchmarks' package >&2) || {
    echo "jvirtio: build failed; run bin/build package -DskipTests to see why" >&2
    exit 2
  }
  # The jar plugin leaves an up-to-date examples.jar alone even when a module below it changed:
  # mark it as built now, or every launch would rebuild.
  touch "$jar"
fi
JVIRTIO_CLASSPATH="$jar:$root/examples/target/lib/*"
for m in "$root"/virtio-*/target; do
  case "$m" in */virtio-ring-jcstress/*) continue ;; esac
  for j in "$m"/virtio-*-[0-9]*.jar; do
    [ -f "$j" ] && JVIRTIO_CLASSPATH="$JVIRTIO_CLASSPATH:$j"
  done
done
if [ -n "${JVIRTIO_DEVICE_PATH:-}" ]; then
  JVIRTIO_CLASSPATH="$JVIRTIO_CLASSPATH:$JVIRTIO_DEVICE_PATH"
fi
