# Sourced by bin/ launchers after jdk25.sh: builds the jars if missing (or older than the
# sources), then sets JVIRTIO_CLASSPATH (and JVIRTIO_BACKEND_CLASSPATH, below): examples.jar, its dependencies, and every other jvirtio
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
# JVIRTIO_CLASSPATH: examples.jar and every jar it depends on (the demos and tools).
# JVIRTIO_BACKEND_CLASSPATH: the same without the jars a backend never loads (picocli, which only
# the demos and tools use; annotation-only jars). Each jar on a class path is opened at start by
# the ServiceLoader look-ups (SLF4J's, logback's, the runner's devices), a few ms each on one CPU.
lib="$root/examples/target/lib"
JVIRTIO_CLASSPATH="$jar"
JVIRTIO_BACKEND_CLASSPATH="$jar"
for j in "$lib"/*.jar; do
  JVIRTIO_CLASSPATH="$JVIRTIO_CLASSPATH:$j"
  case "${j##*/}" in
    picocli-*|error_prone_annotations-*|j2objc-annotations-*|jspecify-*|listenablefuture-*) ;;
    *) JVIRTIO_BACKEND_CLASSPATH="$JVIRTIO_BACKEND_CLASSPATH:$j" ;;
  esac
done
# A module of the build that examples does not depend on (a new device, say) is found too.
for m in "$root"/virtio-*/target; do
  case "$m" in */virtio-ring-jcstress/*) continue ;; esac
  for j in "$m"/virtio-*-[0-9]*.jar; do
    if [ -f "$j" ] && [ ! -f "$lib/${j##*/}" ]; then
      JVIRTIO_CLASSPATH="$JVIRTIO_CLASSPATH:$j"
      case "$j" in */virtio-testkit-*) ;; *) JVIRTIO_BACKEND_CLASSPATH="$JVIRTIO_BACKEND_CLASSPATH:$j" ;; esac
    fi
  done
done
if [ -n "${JVIRTIO_DEVICE_PATH:-}" ]; then
  JVIRTIO_CLASSPATH="$JVIRTIO_CLASSPATH:$JVIRTIO_DEVICE_PATH"
  JVIRTIO_BACKEND_CLASSPATH="$JVIRTIO_BACKEND_CLASSPATH:$JVIRTIO_DEVICE_PATH"
fi
