#!/usr/bin/env bash
# The hostile soak (issue 14): the randomised hostile front-end (MessageFuzzTest, against the
# echo and the virtio-blk/io_uring backends) and the hostile-ring fuzz (HostileRingFuzzTest,
# four blk I/O paths) for MINUTES each test method, in one JVM each, printing the process's
# open fds and mappings as they go (they must stay flat) and asserting at the end that the
# backend left none behind. Run from a checkout; the log goes to $out.
# Usage: bench/soak.sh [MINUTES_PER_METHOD]   (default 10: 2 + 4 methods, about an hour)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
minutes=${1:-10}
out=${SOAK_LOG:-$root/target/soak.log}
mkdir -p "$(dirname "$out")"
cd "$root"
start=$(date +%s)
failed=0
for t in virtio-transport-vhostuser:MessageFuzzTest virtio-testkit:HostileRingFuzzTest; do
  module=${t%%:*} test=${t##*:}
  bin/build -o -pl "$module" -am test -Dtest="$test" -Dsurefire.failIfNoSpecifiedTests=false \
    -Djvirtio.fuzz.minutes="$minutes" -Djvirtio.test.timeout="$((minutes * 60 + 600)) s" -Djvirtio.fork.timeout=$((minutes * 60 * 5 + 1200)) \
    -DtrimStackTrace=false 2>&1 | grep --line-buffered -E '^(soak|fuzz) |Tests run:|FAIL|BUILD|did not end' | tee -a "$out" || failed=1
  # a failure's details: $module/target/surefire-reports/
done
echo "soak: $(( ($(date +%s) - start) / 60 )) minutes in all; log in $out" | tee -a "$out"
exit $failed
