#!/usr/bin/env bash
# Fetches the pinned Apache Kafka release from Maven Central (scripts/kafka/pom.xml) into a cache directory
# outside the work tree and prints that directory. Idempotent: skipped when the jars are there.
# Then dumps class-data-sharing archives of the format tool and of a broker's start-up (storage.jsa,
# kafka.jsa) for this JDK, which roughly halve the time run-kafka.sh takes to a ready broker.
#   LINEGATE_KAFKA_HOME  where the release goes (default ~/.cache/linegate/kafka-VERSION)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
home=${LINEGATE_KAFKA_HOME:-$HOME/.cache/linegate/kafka-$version}

if [ ! -f "$home/.complete" ]; then
  echo "fetch-kafka: Apache Kafka $version from Maven Central into $home" >&2
  rm -rf "$home.tmp"
  mkdir -p "$home.tmp"
  cp "$here/kafka/pom.xml" "$home.tmp/pom.xml"
  (cd "$home.tmp" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory=libs) >&2
  touch "$home.tmp/.complete"
  rm -rf "$home"
  mv "$home.tmp" "$home"
fi

# An archive only maps into the JVM that wrote it: dump again when the JDK changes.
jdk=$(java -Xshare:off -version 2>&1 | tr '\n' ' ')
if [ ! -f "$home/kafka.jsa" ] || [ "$(cat "$home/cds.jdk" 2>/dev/null)" != "$jdk" ]; then
  echo "fetch-kafka: class-data-sharing archives for $(java -version 2>&1 | head -1)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  rm -f "$home/kafka.jsa" "$home/storage.jsa"
  port=$("$here/free-port.sh")
  cport=$("$here/free-port.sh")
  LINEGATE_KAFKA_CDS_DUMP=1 LINEGATE_KAFKA_RELEASE=$home "$here/run-kafka.sh" "$work/kafka" "$port" "$cport" > "$work/kafka.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q "Kafka Server started" "$work/kafka.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  # The archive is written when the JVM exits cleanly (SIGTERM runs Kafka's shutdown).
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  if [ -f "$work/kafka.jsa.tmp" ] && [ -f "$work/storage.jsa.tmp" ]; then
    mv "$work/storage.jsa.tmp" "$home/storage.jsa"
    mv "$work/kafka.jsa.tmp" "$home/kafka.jsa"
    echo "$jdk" > "$home/cds.jdk"
  else
    echo "fetch-kafka: no class-data-sharing archive (the broker starts without one); see:" >&2
    tail -20 "$work/kafka.log" >&2
  fi
fi
echo "$home"
