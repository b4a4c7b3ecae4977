#!/usr/bin/env bash
# Regenerates the interop test data from the schemas, with Apache Avro Java as the reference, and checks
# that fastavro computes and decodes the same (exits 1 when not). Run from anywhere; writes only:
#   interop/java-fingerprints.tsv  fingerprints of schemas/released/*/*.avsc and schemas/avro/*.avsc
#   interop/java-spec-vectors.tsv  fingerprints of the Avro specification's test vectors
#   interop/sample-records.tsv     records written by fastavro (interop/python/make_records.py)
#   interop/sample-decoded.tsv     those records as Decode.java renders them
set -euo pipefail
export LC_ALL=C  # glob order
cd "$(dirname "$0")/.."
java=(java -cp "$(interop/fetch-java.sh)/*")
py=$(interop/fetch-python.sh)
schemas=(schemas/released/*/*.avsc schemas/avro/*.avsc)
confluent=(--confluent 7=schemas/released/edge_event/v2.avsc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

{ echo "# made by interop/regen.sh: java -cp \"\$(interop/fetch-java.sh)/*\" interop/java/Fingerprints.java ${schemas[*]}"
  "${java[@]}" interop/java/Fingerprints.java "${schemas[@]}"; } > interop/java-fingerprints.tsv
{ echo "# made by interop/regen.sh: java -cp \"\$(interop/fetch-java.sh)/*\" interop/java/Fingerprints.java --spec"
  echo "# columns: schema, parsing canonical form, fingerprint (big-endian hex), its bytes little-endian, ok when equal to the published one"
  "${java[@]}" interop/java/Fingerprints.java --spec; } > interop/java-spec-vectors.tsv
"$py" interop/python/make_records.py schemas > interop/sample-records.tsv
{ echo "# made by interop/regen.sh: java -cp \"\$(interop/fetch-java.sh)/*\" interop/java/Decode.java schemas interop/sample-records.tsv ${confluent[*]}"
  "${java[@]}" interop/java/Decode.java schemas interop/sample-records.tsv "${confluent[@]}" || true; } > interop/sample-decoded.tsv

# fastavro must agree: the same lines but for the first one naming the library, and for the messages of
# 'ERROR decode failed:' (none in the samples).
"$py" interop/python/fingerprints.py "${schemas[@]}" > "$tmp/fp.tsv"
"$py" interop/python/fingerprints.py --spec > "$tmp/spec.tsv"
"$py" interop/python/decode.py schemas interop/sample-records.tsv "${confluent[@]}" > "$tmp/decoded.tsv" || true
diff <(grep -v '^# ' interop/java-fingerprints.tsv) <(grep -v '^# ' "$tmp/fp.tsv")
diff <(grep -v '^# ' interop/java-spec-vectors.tsv) <(grep -v '^# ' "$tmp/spec.tsv")
diff <(grep -v '^# ' interop/sample-decoded.tsv) "$tmp/decoded.tsv"
echo "regen: Apache Avro Java and fastavro agree" >&2
