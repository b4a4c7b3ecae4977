#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets/) for SECONDS (default 60) and prints the executions it ran.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs what it needs (the nightly toolchain, cargo-fuzz) when missing. Seeds come fresh from the project's
# own code (tests/src/bin/fuzz_seeds.rs); the corpus grows in ~/.cache/linegate/fuzz-corpus/<target>. A crash
# stops its target, its input is kept in fuzz/artifacts/<target>/, and the script exits 1 once all ran:
# turn the input into a regression test in the crate it was found in.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(station_document avro_single_object avro_confluent station_config modbus_registers)
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

stable_target=${CARGO_TARGET_DIR:-$HOME/.cache/linegate/ci-target}
CARGO_TARGET_DIR=$stable_target cargo build --release -q -p linegate-e2e --bin fuzz-seeds
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
"$stable_target/release/fuzz-seeds" "$seeds" >/dev/null

export CARGO_TARGET_DIR=${LINEGATE_FUZZ_TARGET_DIR:-$HOME/.cache/linegate/fuzz-target}
corpus_root=${LINEGATE_FUZZ_CORPUS:-$HOME/.cache/linegate/fuzz-corpus}
cd fuzz
cargo +nightly fuzz build -O >/dev/null

failed=0
printf '%-20s %8s %14s %8s %s\n' target seconds executions corpus result
for target in "${targets[@]}"; do
  mkdir -p "$corpus_root/$target"
  log=$(mktemp)
  result=ok
  cargo +nightly fuzz run -O "$target" "$corpus_root/$target" "$seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$log" 2>&1 ||
    { result="CRASH (input in fuzz/artifacts/$target/, log $log)"; failed=1; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  printf '%-20s %8s %14s %8s %s\n' "$target" "$seconds" "${runs:-?}" "$(ls "$corpus_root/$target" | wc -l)" "$result"
  [ "$result" = ok ] && rm -f "$log"
done
cd "$root"
exit "$failed"
