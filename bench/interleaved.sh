#!/usr/bin/env bash
# Benchmark methods of this tree (twice: the second copy is the control, how well the run agrees
# with itself) and, with -r REV, of another commit (built in a temporary git worktree), in one JVM,
# interleaved in 2 ms chunks (org.jvirtio.benchmarks.Interleaved): on these noisy machines a few-ns
# A/B is only readable this way. Pinned to CPU 1. Extra VARIANT arguments name more classes or
# fields for this tree's jar, e.g. '#SplitQueueBenchmark@rewrite=true'.
# Usage: bench/interleaved.sh [-r REV] CLASS METHODS PARAMS|- SECONDS OPS [VARIANT...]
# Example: bench/interleaved.sh -r HEAD~1 PackedQueueBenchmark batch32,driverOnly32 layout=direct1,inflight=false 20 32
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=
if [ "${1:-}" = -r ]; then rev=$2; shift 2; fi
if [ $# -lt 5 ]; then sed -n 's/^# Usage: //p' "$0" >&2; exit 2; fi
cls=$1 methods=$2 params=$3 secs=$4 ops=$5; shift 5
. "$root/bin/lib/jdk25.sh"
java=$JAVA_HOME/bin/java
work=$(mktemp -d)
trap 'if [ -n "$rev" ]; then git -C "$root" worktree remove --force "$work/old" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
"$root/bin/build" -q package -DskipTests -Djcstress.skip=true -pl benchmarks -am >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
cp "$root/benchmarks/target/benchmarks.jar" "$work/now.jar"
cp "$work/now.jar" "$work/now-control.jar"
variants=("$work/now.jar" "$work/now-control.jar")
if [ -n "$rev" ]; then
  git -C "$root" worktree add -q -f "$work/old" "$rev"
  "$work/old/bin/build" -q package -DskipTests -Djcstress.skip=true -pl benchmarks -am >"$work/build-old.log" 2>&1 || { cat "$work/build-old.log" >&2; exit 1; }
  cp "$work/old/benchmarks/target/benchmarks.jar" "$work/old.jar"
  variants+=("$work/old.jar")
fi
for v in "$@"; do variants+=("$work/now.jar$v"); done
taskset -c 1 "$java" --enable-native-access=ALL-UNNAMED -cp "$work/now.jar" org.jvirtio.benchmarks.Interleaved \
  "$cls" "$methods" "$params" "$secs" "$ops" "${variants[@]}" 2> >(grep -v '^SLF4J' >&2)
