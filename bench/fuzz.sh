#!/usr/bin/env bash
# Coverage-guided fuzzing by hand (issue 14): each Jazzer @FuzzTest target until 10^7
# executions (the annotation's maxExecutions) or SECONDS of fuzzing, whichever comes first. The corpus
# grows in each module's .cifuzz-corpus/ (not committed); a finding is written as crash-* in
# the module directory and fails the run. With --keep, the corpus is copied into the target's
# committed regression inputs (src/test/resources/.../<Class>Inputs/<method>/), which plain
# `bin/build verify` replays.
# Usage: bench/fuzz.sh [--keep] [SECONDS] [TARGET...]   (targets: ring packed blk decode mmio; default all)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
keep=0
if [ "${1:-}" = --keep ]; then keep=1; shift; fi
seconds=${1:-10800}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ring packed blk decode mmio)
cd "$root"
bin/build -q -o install -DskipTests -pl virtio-api,virtio-ring,virtio-device-host,virtio-blk,virtio-transport-vhostuser,virtio-rng,virtio-runner,virtio-transport-mmio
for t in "${targets[@]}"; do
  case $t in
    ring) module=virtio-ring class=org.jvirtio.ring.DescriptorWalkFuzzTest method=walkingAnyRingStaysInsideGuestMemory ;;
    packed) module=virtio-ring class=org.jvirtio.ring.PackedRingFuzzTest method=anyPackedRingIsWalkedInsideGuestMemory ;;
    blk) module=virtio-blk class=org.jvirtio.blk.BlkRequestFuzzTest method=anyRequestIsAnsweredWithinItsBuffers ;;
    decode) module=virtio-transport-vhostuser class=org.jvirtio.transport.vhostuser.MessageDecodeFuzzTest method=decodingAnyMessageRefusesOrYieldsValidValues ;;
    mmio) module=virtio-transport-mmio class=org.jvirtio.transport.mmio.RegisterFileFuzzTest method=anyAccessSequenceLeavesAWorkingDevice ;;
    *) echo "fuzz.sh: unknown target $t (ring, packed, blk, decode, mmio)" >&2; exit 2 ;;
  esac
  echo "== $t: $class, up to 10^7 executions or $seconds s"
  start=$(date +%s)
  set +e
  # jazzer.internal.arg.N are libFuzzer's arguments (0 is argv[0]); they come after the
  # annotation's, so -max_total_time makes SECONDS the fuzzing time and the run ends cleanly
  # (DONE) instead of in JUnit's or this script's timeout.
  JAZZER_FUZZ=1 timeout --signal=INT "$((seconds + 120))" bin/build -o -pl "$module" test -Dtest="${class##*.}" \
    -Djazzer.internal.arg.0=jazzer -Djazzer.internal.arg.1=-max_total_time="$seconds" \
    -Djvirtio.test.timeout="$((seconds + 60)) s" -Djvirtio.fork.timeout="$((seconds + 100))" 2>&1 \
    | grep --line-buffered -E '^#[0-9]+.*(pulse|DONE)|Done [0-9]+ runs|Tests run:|FuzzTestFinding|crash-|BUILD'
  rc=${PIPESTATUS[0]}
  set -e
  echo "== $t: exit $rc after $(( $(date +%s) - start )) s"
  if [ "$keep" = 1 ]; then
    src="$module/.cifuzz-corpus/$class/$method"
    dst="$module/src/test/resources/${class//.//}Inputs/$method"
    mkdir -p "$dst"
    cp "$src"/* "$dst"/ 2>/dev/null || true
    echo "== $t: $(ls "$dst" | wc -l) regression inputs in $dst"
  fi
done
