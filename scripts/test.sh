#!/usr/bin/env bash
# Runs every test in tiers, in order, and prints each tier's duration:
#   unit    the crates' own tests: pure logic, real SQLite files, the event contract (seconds)
#   edge    tests/tests/edge/: the edge against real Mosquitto, Apache Kafka and Modbus servers
#   bridge  tests/tests/bridge/: the bridge against real Apache Kafka (and Java Avro, fastavro readers)
#   faults  tests/tests/faults/: the whole pipeline, exactly-once through kills, the broker restarted
#   system  tests/tests/system/: cross-compiled binaries under qemu, packages, systemd, a full disk
# `scripts/test.sh edge faults` runs only the tiers named (set-up and builds first, as always).
# End-to-end tests run one at a time (LINEGATE_E2E_THREADS, default 1): each starts its own brokers and
# several bridges or edges, and two of them at once on a 2-core machine would measure the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit edge bridge faults system)
threads=${LINEGATE_E2E_THREADS:-1}
summary=()
report() {
  local line
  echo "== durations"
  for line in "${summary[@]}"; do echo "   $line"; done
}
trap report EXIT
timed() {
  local name=$1 start=$SECONDS status=0
  shift
  echo "== $name"
  "$@" || status=$?
  summary+=("$(printf '%-14s %5d s%s' "$name" $((SECONDS - start)) "$([ "$status" -eq 0 ] || echo '  FAILED')")")
  return "$status"
}

# tests/tests/system/cross.rs runs the cross-compiled edge from dist/bin/<triple>/: the aarch64 one under qemu
# against the real brokers, the static musl one here. cross/build.sh builds them in its own target directory
# ($LINEGATE_CROSS_TARGET_DIR). Add armv7-unknown-linux-gnueabihf to LINEGATE_CROSS_TARGETS for its test too.
if [[ " ${tiers[*]} " == *" system "* ]]; then
  read -ra cross_targets <<<"${LINEGATE_CROSS_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-gnu}"
  timed "cross build" ./cross/build.sh "${cross_targets[@]}"
fi
# The end-to-end tests run the real binaries; build them first, in the same profile as the tests.
timed build cargo build --workspace --bins --tests

for tier in "${tiers[@]}"; do
  case $tier in
    unit)
      timed unit bash -c 'cargo test --workspace --exclude linegate-e2e && cargo test -p linegate-e2e --lib --bins' ;;
    edge | bridge | faults | system)
      timed "$tier" cargo test -p linegate-e2e --test "$tier" -- --test-threads="$threads" ;;
    *)
      echo "test.sh: unknown tier \`$tier\` (unit, edge, bridge, faults, system)" >&2
      exit 2 ;;
  esac
done
