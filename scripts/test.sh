#!/usr/bin/env bash
# Runs every test: unit, contract and end-to-end (real Mosquitto and Apache Kafka on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# tests/tests/cross.rs runs the cross-compiled edge from dist/bin/<triple>/: the aarch64 one under qemu against
# the real brokers, the static musl one here. cross/build.sh builds them in its own target directory
# ($LINEGATE_CROSS_TARGET_DIR), before `cargo test`. Add armv7-unknown-linux-gnueabihf to LINEGATE_CROSS_TARGETS
# for its test to run too.
read -ra cross_targets <<<"${LINEGATE_CROSS_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-gnu}"
./cross/build.sh "${cross_targets[@]}"
# The end-to-end tests run the real binaries; build them first, in the same profile as the tests.
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
