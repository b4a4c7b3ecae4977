#!/usr/bin/env bash
# Runs one Apache Kafka node (KRaft, broker and controller combined) in the foreground on 127.0.0.1:PORT
# (controller on CONTROLLER_PORT) with its data in DIR. The first run formats DIR; later runs with the same DIR
# restart the same broker with its topics, offsets and transactions. exec, so the PID is the broker's.
# Readiness: scripts/wait-kafka.sh PORT. Extra server properties (e.g. listeners for TLS) may be appended
# from the file named by LINEGATE_KAFKA_EXTRA_PROPERTIES. Used by the tests, the demo and the benchmarks.
set -euo pipefail
usage="usage: run-kafka.sh DIR PORT CONTROLLER_PORT"
dir=${1:?$usage}
port=${2:?$usage}
cport=${3:?$usage}
here=$(cd "$(dirname "$0")" && pwd)
# fetch-kafka.sh names the release it is dumping archives of; everyone else asks it.
home=${LINEGATE_KAFKA_RELEASE:-$("$here/fetch-kafka.sh")}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Single node: internal topics with one partition and replication factor 1; no rebalance delay; a group
# session may be as short as 1 s, so a killed consumer is replaced within seconds; small buffers and few
# threads for a 2-core machine.
cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.network.threads=2
num.io.threads=2
background.threads=2
group.coordinator.threads=1
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=16777216
PROPS
if [ -n "${LINEGATE_KAFKA_EXTRA_PROPERTIES:-}" ]; then
  cat "$LINEGATE_KAFKA_EXTRA_PROPERTIES" >> "$dir/server.properties"
fi

# Kafka's own JVM flags (kafka-run-class.sh) with a small heap.
java_opts=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true)
tool_opts=(-Xmx256m -XX:TieredStopAtLevel=1)
# Class-data sharing: the archives fetch-kafka.sh dumps (by running this script with LINEGATE_KAFKA_CDS_DUMP
# set) and then uses; without them the JVMs start as usual, only slower.
if [ -n "${LINEGATE_KAFKA_CDS_DUMP:-}" ]; then
  java_opts+=(-XX:ArchiveClassesAtExit="$dir/../kafka.jsa.tmp")
  tool_opts+=(-XX:ArchiveClassesAtExit="$dir/../storage.jsa.tmp")
else
  if [ -f "$home/kafka.jsa" ]; then java_opts+=(-XX:SharedArchiveFile="$home/kafka.jsa" -Xshare:auto); fi
  if [ -f "$home/storage.jsa" ]; then tool_opts+=(-XX:SharedArchiveFile="$home/storage.jsa" -Xshare:auto); fi
fi
cp="$home/libs/*"

if [ ! -f "$dir/data/meta.properties" ]; then
  java "${tool_opts[@]}" -Dlog4j2.configurationFile="$here/kafka/tools-log4j2.yaml" -cp "$cp" \
    kafka.tools.StorageTool format --cluster-id "${LINEGATE_KAFKA_CLUSTER_ID:-lInEgAtEtEsTcLuStEr01w}" \
    --config "$dir/server.properties" ${LINEGATE_KAFKA_FORMAT_ARGS:-} >&2
fi
exec java "${java_opts[@]}" -Dlog4j2.configurationFile="$here/kafka/log4j2.yaml" -Dkafka.logs.dir="$dir/logs" \
  -cp "$cp" kafka.Kafka "$dir/server.properties"
