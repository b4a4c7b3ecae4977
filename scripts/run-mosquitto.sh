#!/usr/bin/env bash
# Runs Mosquitto in the foreground on 127.0.0.1:PORT with its state in DIR (persistent sessions survive a
# restart with the same DIR). Used by the tests and the demo; exec, so the PID is the broker's.
set -euo pipefail
port=${1:?usage: run-mosquitto.sh PORT DIR}
dir=${2:?usage: run-mosquitto.sh PORT DIR}
mkdir -p "$dir"
# Run as root, Mosquitto drops to its own user: let it write its persistence file there.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto "$dir"; fi
cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
autosave_interval 1
# Keep every QoS 1 result for a subscriber that is away (an edge being restarted), not only 1000.
max_queued_messages 0
max_inflight_messages 100
log_dest stderr
log_type error
log_type warning
log_type notice
CONF
broker=$(command -v mosquitto || echo /usr/sbin/mosquitto)
exec "$broker" -c "$dir/mosquitto.conf"
