#!/usr/bin/env bash
# The whole pipeline on this machine: Mosquitto and Apache Kafka (one KRaft node) on free loopback ports, one
# bridge, three edges, a station simulator, then what arrived on each topic. Everything stops when the script
# ends.
#   STATIONS (default ST-01,ST-02,ST-03)  INSPECTIONS per station (default 50)  RATE docs/s per station (0 = max)
#   DEMO_KEEP=1 keeps everything running at the end, until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "demo: building"
cargo build --workspace --bins -q

stations=${STATIONS:-ST-01,ST-02,ST-03}
inspections=${INSPECTIONS:-50}
rate=${RATE:-200}
dir=${DEMO_DIR:-$root/demo-data/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$dir"
bin=${CARGO_TARGET_DIR:-$root/target}/debug

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: nothing listens on port $1; see the logs in $dir" >&2
  exit 1
}

mqtt_port=$(./scripts/free-port.sh)
kafka_port=$(./scripts/free-port.sh)
controller_port=$(./scripts/free-port.sh)
./scripts/run-mosquitto.sh "$mqtt_port" "$dir/mosquitto" > "$dir/mosquitto.log" 2>&1 &
pids+=($!)
./scripts/run-kafka.sh "$dir/kafka" "$kafka_port" "$controller_port" > "$dir/kafka.log" 2>&1 &
kafka_pid=$!
pids+=("$kafka_pid")
wait_port "$mqtt_port"
./scripts/wait-kafka.sh "$dir/kafka.log" "$kafka_pid"
echo "demo: Mosquitto on 127.0.0.1:$mqtt_port, Apache Kafka on 127.0.0.1:$kafka_port, logs in $dir"

export LINEGATE_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port
export LINEGATE_MQTT_HOST=127.0.0.1
export LINEGATE_MQTT_PORT=$mqtt_port
export LINEGATE_TOPIC_REPLICATION=1

"$bin/linegate-bridge" run --config config/bridge.example.toml > "$dir/bridge.log" 2>&1 &
pids+=($!)
IFS=, read -r -a station_list <<< "$stations"
for station in "${station_list[@]}"; do
  LINEGATE_STATION_ID=$station LINEGATE_DATA_DIR=$dir/edge-$station \
    LINEGATE_HTTP_LISTEN=127.0.0.1:$(./scripts/free-port.sh) \
    "$bin/linegate-edge" run --config config/edge.example.toml > "$dir/edge-$station.log" 2>&1 &
  pids+=($!)
done
# The broker keeps results for an edge only once it has subscribed: wait for that before stations publish.
for station in "${station_list[@]}"; do
  for _ in $(seq 1 200); do
    grep -q "MQTT subscribed" "$dir/edge-$station.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "MQTT subscribed" "$dir/edge-$station.log" || { echo "demo: edge $station did not subscribe; see $dir/edge-$station.log" >&2; exit 1; }
done
echo "demo: bridge and ${#station_list[@]} edges started and subscribed"

# Each station also sends one unparseable payload (quarantined at its edge) and one result with an
# out-of-range score (rejected by the bridge to the dead-letter topic).
"$bin/station-sim" --mqtt-port "$mqtt_port" --stations "$stations" --inspections "$inspections" \
  --rate "$rate" --malformed 1 --invalid 1 --seed "$(date +%s)" | tee "$dir/simulator.log"

# The simulator prints how many payloads it published per station: each inspection is 3 or 4 documents.
published=$(awk '/publishing/ {sum += $3} END {print sum}' "$dir/simulator.log")
n_stations=${#station_list[@]}
valid=$((published - 2 * n_stations))
echo "demo: $valid valid results published; waiting for them on the topics"
"$bin/topic-dump" --bootstrap "$LINEGATE_KAFKA_BOOTSTRAP" \
  --topic "edge.station.events=$((valid + n_stations))" \
  --topic "inspection.lifecycle=$valid" \
  --topic quality.events \
  --topic "audit.events=$((valid + n_stations))" \
  --topic "edge.station.events.dlq=$n_stations" \
  --show inspection.lifecycle --timeout-secs 120

echo "== quarantined at the edges (payloads that never became events, kept with the reason):"
for station in "${station_list[@]}"; do
  outbox=$dir/edge-$station/outbox.db
  echo "   $station: $(sqlite3 "$outbox" 'SELECT COUNT(*) FROM events') waiting for Kafka, $(sqlite3 "$outbox" 'SELECT COUNT(*) FROM quarantine') quarantined"
  sqlite3 -separator ': ' "$outbox" "SELECT '     #' || id, reason FROM quarantine ORDER BY id"
done
first=${station_list[0]}
cat <<NEXT
== where to look next
   logs                  $dir/{bridge,edge-<station>,kafka,mosquitto}.log
   an edge's outbox      $bin/linegate-edge outbox --config config/edge.example.toml stats
                         (with LINEGATE_STATION_ID=$first LINEGATE_DATA_DIR=$dir/edge-$first)
   dead letters          $bin/linegate-bridge dlq redrive --config config/bridge.example.toml --all --dry-run
   the audit chain       $bin/linegate-bridge audit verify --config config/bridge.example.toml
   guides                docs/operations.md, docs/topics.md, docs/quality.md
NEXT
echo "demo: done; logs and outboxes are in $dir"
if [ -n "${DEMO_KEEP:-}" ]; then
  echo "demo: brokers, bridge and edges keep running for the commands above (LINEGATE_KAFKA_BOOTSTRAP=$LINEGATE_KAFKA_BOOTSTRAP); Ctrl-C stops them"
  wait
else
  echo "demo: everything stops now; run with DEMO_KEEP=1 to keep it running for the commands above"
fi
