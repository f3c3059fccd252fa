# Sourced by the backend launchers (bin/vhost-user, bin/vhost-user-blk) after jars.sh: the JVM
# options of a backend process, in one place (issue 13; docs/PERFORMANCE.md, "Footprint").
#
# A backend's data is not on the heap (guest memory is mapped, chains and requests are pooled and
# reused), so it runs on a small heap with the serial collector: no collector threads, no G1
# remembered sets, a few MB touched instead of a server-sized young generation. Compact object
# headers (JEP 519) shrink what little there is. No hsperfdata file (-XX:-UsePerfData; jcmd
# still attaches by pid).
#
# The JIT compiles later (-XX:CompileThresholdScaling=10: a method is compiled after ten times
# the calls and loops it otherwise needs): on one CPU the C1 and C2 threads spent more CPU than
# the start itself compiling code that runs only at start. The project's classes and Netty's
# (the I/O threads' event loop) keep the JDK's usual thresholds (a per-method scaling of 0.1 on
# top of the 10; none of their methods is hot during a start, so the start compiles the same):
# the request path of a disk serving a few thousand requests a second (RBD) reached C2 only after
# 25 s at 10x, and again 10 s after each front-end reconnect (a new connection takes branches the
# compiled code had left out: an uncommon trap sends the method back to profiling); at 1x, 3 s and
# 1 s. docs/PERFORMANCE.md, "RBD: the JIT after a reconnect".
# One method is never compiled: the class-file API's StackMapGenerator.processBlock, which runs
# only while the JDK generates classes at start (the FFM downcall stub, annotation proxies,
# lambda forms). C1 compiling it took a 7.7 MB compiler arena, resident for the first 5-10 s of
# every backend (until the arena pool is cleaned and the heap trimmed); interpreted, the start is
# no slower (docs/PERFORMANCE.md, "Footprint").
# -XX:TrimNativeHeapInterval=5000 hands freed native memory back to the kernel every 5 s (the C2
# compiler's arenas, freed after the request path is compiled, stayed in glibc's heap: about
# 12 MB of resident memory under load).
# --sun-misc-unsafe-memory-access=allow lets Netty free its direct buffers through Unsafe as it
# does on JDK 23 and older (without it, Netty 4.2 builds an FFM cleaner from method handles at
# start, about 60 ms on one CPU; JDK 25 still has these methods, JEP 471/498).
#
# Start-up: an ahead-of-time cache (JEP 483/514) of the classes a backend loads and links, made
# once by a training run (start, listen, SIGTERM) the first time a launcher finds it missing or
# older than the jars, kept in examples/target (built, never committed). JVIRTIO_AOT=off skips it.
#
# JVIRTIO_JAVA_OPTS comes after all of these on the command line, so it overrides any of them
# (e.g. JVIRTIO_JAVA_OPTS="-XX:+UseG1GC -Xmx1g" for a device that keeps data on the heap).
JVIRTIO_BACKEND_OPTS=(-XX:+UseSerialGC -Xms8m -Xmx128m -XX:+UseCompactObjectHeaders -XX:-UsePerfData
  -XX:CompileThresholdScaling=10 -XX:TrimNativeHeapInterval=5000 --sun-misc-unsafe-memory-access=allow
  --enable-native-access=ALL-UNNAMED -Dguice_bytecode_gen_option=DISABLED
  -XX:CompileCommand=quiet -XX:CompileCommand=exclude,jdk.internal.classfile.impl.StackMapGenerator::processBlock
  "-XX:CompileCommand=CompileThresholdScaling,org.jvirtio.*::*,0.1" "-XX:CompileCommand=CompileThresholdScaling,io.netty.*::*,0.1")

# The cache also holds the training run's method profiles (JEP 515), which JDK 25 replays by
# compiling those methods early: the training run is a start, so that compiled start-up code
# on the start's own CPU, about 30 ms of a start on one CPU. Replay is turned off with a
# diagnostic flag, only on JDK 25 (where it is known to exist: a later JDK is left alone rather
# than refused for an unknown option).
if [ "${jvirtio_major:-}" = 25 ]; then
  JVIRTIO_BACKEND_OPTS+=(-XX:+UnlockDiagnosticVMOptions -XX:-AOTReplayTraining)
fi

jvirtio_aot="$root/examples/target/jvirtio-backend.aot"

# Where the cache asks to be mapped. By default (ArchiveRelocationMode=1 since JDK 20) the JVM
# maps it at a random address in every process and relocates it there: every pointer in it is
# rewritten, so all of its 23 MB become private, dirty memory of each backend, and a host with a
# backend per VM pays that per VM. Instead the cache is made for an address drawn at random when
# it is made (one of 5 million 16 MiB-aligned slots between 1 TiB and 80 TiB, below where the
# kernel puts executables and libraries: 22 bits), and backends map it there unrelocated
# (ArchiveRelocationMode=0). Its read-only part then stays clean and is shared by every backend
# on the host like libjvm.so: about 8 MB less private memory per backend (docs/PERFORMANCE.md).
# The address is random per cache (per build and host, drawn again whenever the cache is
# remade), not per process: the trade Windows makes for DLLs (random per boot) and Android for
# its zygote. (The Java heap, at a fixed address below 4 GB for compressed pointers, was never
# random.) If the address is taken the JVM relocates as before. JVIRTIO_AOT_SHARED=off keeps
# per-process relocation.
jvirtio_archive_base() { # prints a random 16 MiB-aligned address in [1 TiB, 80 TiB)
  local r=${SRANDOM:-}
  [ -n "$r" ] || r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  printf '0x%x\n' $(( 0x10000000000 + (r % 0x4f0000) * 0x1000000 ))
}

jvirtio_train_aot() { # makes $jvirtio_aot with a training run of the blk backend on a small image
  local dir pid i=0 base
  dir=$(mktemp -d)
  truncate -s 1M "$dir/train.img"   # an image, not a null disk: images are what backends serve
  base=$(jvirtio_archive_base)
  echo "jvirtio: making the start-up cache (once; a few seconds)..." >&2
  # Not systemd's business: the training run must not say READY=1 for the service (NOTIFY_SOCKET)
  # nor look at the sockets systemd passed the launcher (LISTEN_*).
  env -u NOTIFY_SOCKET -u LISTEN_PID -u LISTEN_FDS -u LISTEN_FDNAMES \
    "$JAVA_HOME/bin/java" "${JVIRTIO_BACKEND_OPTS[@]}" -XX:SharedBaseAddress="$base" -XX:AOTCacheOutput="$dir/cache.aot" -cp "$JVIRTIO_BACKEND_CLASSPATH" \
    org.jvirtio.runner.VhostUserRunner blk --socket "$dir/train.sock" --image "$dir/train.img" >"$dir/log" 2>&1 &
  pid=$!
  while [ ! -S "$dir/train.sock" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do
    sleep 0.05
    i=$((i + 1))
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -s "$dir/cache.aot" ]; then
    echo "$base" >"$jvirtio_aot.base"       # marks a cache made for a random address (older ones are remade)
    mv -f "$dir/cache.aot" "$jvirtio_aot"   # atomic: a launcher starting meanwhile sees the old one or the new one
  else
    echo "jvirtio: no start-up cache made (starts are slower; see $jvirtio_aot.log)" >&2
    cp "$dir/log" "$jvirtio_aot.log" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

jvirtio_use_aot() { # adds the options that map $jvirtio_aot, if it exists
  [ -f "$jvirtio_aot" ] || return 0
  JVIRTIO_BACKEND_OPTS+=(-XX:AOTCache="$jvirtio_aot")
  # A diagnostic flag: only on JDK 25, where it is known (and unlocked above).
  if [ "${jvirtio_major:-}" = 25 ] && [ "${JVIRTIO_AOT_SHARED:-on}" != off ]; then
    JVIRTIO_BACKEND_OPTS+=(-XX:ArchiveRelocationMode=0)
  fi
}

if [ "${JVIRTIO_AOT:-on}" != off ]; then
  if [ ! -f "$jvirtio_aot" ] || [ "$jvirtio_aot" -ot "$jar" ] || [ ! -f "$jvirtio_aot.base" ]; then
    jvirtio_train_aot
  fi
  jvirtio_use_aot
fi
