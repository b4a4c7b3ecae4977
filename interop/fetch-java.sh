#!/usr/bin/env bash
# Fetches the pinned Apache Avro Java library (interop/java/pom.xml) and its runtime dependencies from
# Maven Central into a cache directory outside the work tree and prints that directory; run the tools
# with `java -cp "DIR/*" interop/java/Fingerprints.java ...`. Idempotent: skipped when the jars are there.
#   LINEGATE_AVRO_JAVA_HOME  where the jars go (default ~/.cache/linegate/avro-java-VERSION)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<avro.version>\(.*\)</avro.version>.*:\1:p' "$here/java/pom.xml")
home=${LINEGATE_AVRO_JAVA_HOME:-$HOME/.cache/linegate/avro-java-$version}

if [ ! -f "$home/.complete" ]; then
  echo "fetch-java: Apache Avro $version from Maven Central into $home" >&2
  rm -rf "$home.tmp"
  mkdir -p "$home.tmp"
  # Maven resolves the pom in a scratch copy, so nothing is written under the work tree.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp "$here/java/pom.xml" "$work/pom.xml"
  (cd "$work" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$home.tmp") >&2
  touch "$home.tmp/.complete"
  rm -rf "$home"
  mv "$home.tmp" "$home"
fi
echo "$home"
