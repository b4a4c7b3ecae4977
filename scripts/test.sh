#!/usr/bin/env bash
# Runs every test: unit, contract and end-to-end (real Mosquitto and tansu on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The end-to-end tests run the real binaries; build them first, in the same profile as the tests.
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
