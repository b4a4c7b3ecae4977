#!/usr/bin/env bash
# Line coverage of every crate, counting the binaries the end-to-end tests run (not only the test processes):
# builds the workspace instrumented (its own target directory), runs the tiers of scripts/test.sh with it,
# then prints line coverage per crate. Tiers default to `unit edge bridge faults`; name others as arguments.
# A failing test does not stop the measurement (its tier is reported as failed). Needs cargo-llvm-cov and
# the llvm-tools component, which this script installs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-llvm-cov >/dev/null || cargo install cargo-llvm-cov --locked
rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' || rustup component add llvm-tools

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit edge bridge faults)
# show-env sets RUSTFLAGS for instrumentation, LLVM_PROFILE_FILE (one profile per process, binaries the
# tests start included) and the instrumented target directory, so tests/src/process.rs finds those binaries.
export CARGO_TARGET_DIR=${LINEGATE_COVERAGE_TARGET_DIR:-$HOME/.cache/linegate/coverage-target}
eval "$(cargo llvm-cov show-env --sh)"
cargo llvm-cov clean --workspace
failed=()
for tier in "${tiers[@]}"; do
  ./scripts/test.sh "$tier" || failed+=("$tier")
done
out=${LINEGATE_COVERAGE_OUT:-$CARGO_TARGET_DIR/coverage}
mkdir -p "$out"
cargo llvm-cov report --json --summary-only --output-path "$out/summary.json"
cargo llvm-cov report --html --output-dir "$out"
python3 - "$out/summary.json" <<'EOF'
import json, os, sys
crates = {}
root = os.getcwd() + "/"
for f in json.load(open(sys.argv[1]))["data"][0]["files"]:
    path = f["filename"].removeprefix(root)
    crate = path.split("/")[0]
    if path.startswith(("/", ".")) or "/src/" not in path:
        continue
    lines = f["summary"]["lines"]
    total = crates.setdefault(crate, [0, 0])
    total[0] += lines["covered"]
    total[1] += lines["count"]
print("line coverage per crate (production and test code under <crate>/src):")
for crate, (covered, count) in sorted(crates.items()):
    print(f"  {crate:16} {100 * covered / max(count, 1):5.1f} %  ({covered} of {count} lines)")
EOF
echo "coverage: HTML report in $out/html/index.html"
[ ${#failed[@]} -eq 0 ] || { echo "coverage: tiers with failing tests: ${failed[*]}" >&2; exit 1; }
