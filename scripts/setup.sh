#!/usr/bin/env bash
# Installs what linegate's build, tests and demo need on a Debian machine. Idempotent: it skips what is there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
# The interop tests read linegate's records with fastavro from a venv (interop/fetch-python.sh).
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v socat >/dev/null || missing+=(socat)
# cross/package.sh builds .debs with dpkg-deb; tests/tests/system/packaging.rs checks the unit with systemd-analyze.
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v useradd >/dev/null || missing+=(passwd)
command -v fakeroot >/dev/null || missing+=(fakeroot)
# package.sh reads a binary's glibc needs with readelf; the cross tests use readelf and file. (cross/build.sh
# installs the cross compilers, musl-tools and qemu-user-static itself.)
command -v readelf >/dev/null || missing+=(binutils)
command -v file >/dev/null || missing+=(file)
# Apache Kafka, the broker of the tests, the demo and the benchmarks, runs from Maven Central's jars.
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
if command -v rustup >/dev/null; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
fi
echo "setup: $(cargo --version)"

kafka=$("$here/fetch-kafka.sh")
echo "setup: Apache Kafka $(basename "$kafka" | sed 's/^kafka-//') in $kafka"
# Independent Avro readers for the interop tests: Java Avro from Maven Central, fastavro from PyPI.
echo "setup: Avro Java in $("$here/../interop/fetch-java.sh"), fastavro in $("$here/../interop/fetch-python.sh")"
