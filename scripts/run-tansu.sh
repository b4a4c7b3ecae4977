#!/usr/bin/env bash
# Runs tansu (a Kafka-API broker) in the foreground on 127.0.0.1:PORT. STORAGE is memory://tansu/ (default)
# or sqlite://FILE (relative to the working directory; sqlite:////abs/path for an absolute one), which keeps topics, records and committed offsets across a restart.
# Used by the tests and the demo; exec, so the PID is the broker's.
set -euo pipefail
port=${1:?usage: run-tansu.sh PORT [STORAGE]}
storage=${2:-memory://tansu/}
exec tansu broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine "$storage"
