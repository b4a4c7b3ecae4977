#!/usr/bin/env bash
# Waits until the broker that run-kafka.sh started, logging to LOG (its stdout, freshly truncated), says it
# is ready to serve; fails with the log's tail if the process PID exits first or TIMEOUT seconds (default 60)
# pass. "Kafka Server started" is logged once the broker has registered with its controller, caught up with
# the metadata log and opened its listeners to requests.
set -euo pipefail
log=${1:?usage: wait-kafka.sh LOG PID [TIMEOUT_S]}
pid=${2:?usage: wait-kafka.sh LOG PID [TIMEOUT_S]}
timeout=${3:-60}
deadline=$((SECONDS + timeout))
until grep -q "Kafka Server started" "$log" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "wait-kafka: the broker exited during start-up:" >&2; tail -20 "$log" >&2; exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "wait-kafka: the broker was not ready within ${timeout}s:" >&2; tail -20 "$log" >&2; exit 1
  fi
  sleep 0.05
done
