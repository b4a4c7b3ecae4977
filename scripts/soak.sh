#!/usr/bin/env bash
# The soak (tests/tests/faults/soak.rs): results at RATE per second across four MQTT stations for MINUTES
# (defaults 30 and 2000), a fault every minute in turn (edge kill -9, bridge kill -9, Kafka kill -9, Mosquitto
# kill -9, Kafka SIGSTOP), judged by the independent checker; one edge's and one bridge's resident memory is
# sampled every 10 s and must stay flat.
#   scripts/soak.sh [MINUTES] [RATE]
# Needs what the test suite needs (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export LINEGATE_SOAK_MINUTES=${1:-30} LINEGATE_SOAK_RATE=${2:-2000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/linegate/ci-target}
cargo build -q -p linegate-edge -p linegate-bridge
exec cargo test -q -p linegate-e2e --test faults soak -- --ignored --nocapture
