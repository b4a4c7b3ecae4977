"""Decodes Avro single-object records with fastavro: the same contract, input and output as
interop/java/Decode.java (see the rules there), so the two outputs can be compared line by line.

    "$(interop/fetch-python.sh)" interop/python/decode.py SCHEMA_DIR RECORDS_FILE [--confluent ID=SCHEMA_FILE,...]

Writer schemas: SCHEMA_DIR/released/<kind>/v<N>.avsc, by CRC-64-AVRO fingerprint (fastavro's); with
--confluent also the given files by Confluent schema id. A record is read with its writer schema as the
reader schema, with logicalType attributes removed first so that values stay as written (a uuid its
string, a timestamp-millis its long) rather than fastavro's UUID and datetime objects; the wire format
is the same. Output: `<label>\t<JSON>` per record, json.dumps(sort_keys=True, separators=(",", ":"))
with bytes and fixed as lowercase hex, or `<label>\tERROR <reason>` and then exit status 1.
"""
import glob
import io
import json
import os
import re
import sys

import fastavro

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
from fingerprints import crc64_avro, load


def without_logical_types(t):
    if isinstance(t, dict):
        return {k: without_logical_types(v) for k, v in t.items() if k != "logicalType"}
    if isinstance(t, list):
        return [without_logical_types(v) for v in t]
    return t


def reader(schema):
    return fastavro.parse_schema(without_logical_types(schema))


def plain(v):
    """fastavro's value with bytes (bytes and fixed) as hex, ready for json.dumps."""
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


class Failure(Exception):
    pass


def main(args):
    if not (len(args) == 2 or (len(args) == 4 and args[2] == "--confluent")):
        print("usage: decode.py SCHEMA_DIR RECORDS_FILE [--confluent ID=SCHEMA_FILE,...]", file=sys.stderr)
        return 2
    by_fingerprint = {}  # 8 fingerprint bytes as on the wire, in hex -> parsed writer schema
    for path in sorted(glob.glob(os.path.join(args[0], "released", "*", "v*.avsc"))):
        with open(path) as fh:
            schema = json.load(fh)
        by_fingerprint[crc64_avro(schema)[2]] = reader(schema)
    by_id = {}
    if len(args) == 4:
        for pair in args[3].split(","):
            key, path = pair.split("=", 1)
            by_id[int(key)] = reader(load(path.strip()))

    failed = False
    with open(args[1]) as fh:
        lines = fh.read().splitlines()
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        label, _, text = line.partition("\t")
        try:
            text = text.strip()
            if len(text) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", text):
                raise Failure("bad hex")
            b = bytes.fromhex(text)
            if len(b) >= 10 and b[:2] == b"\xc3\x01":
                writer = by_fingerprint.get(b[2:10].hex())
                if writer is None:
                    raise Failure(f"unknown fingerprint {b[2:10].hex()}")
                body = io.BytesIO(b[10:])
            elif by_id and len(b) >= 5 and b[0] == 0:
                schema_id = int.from_bytes(b[1:5], "big", signed=True)
                writer = by_id.get(schema_id)
                if writer is None:
                    raise Failure(f"unknown schema id {schema_id}")
                body = io.BytesIO(b[5:])
            else:
                raise Failure("unknown format")
            try:
                value = fastavro.schemaless_reader(body, writer, None)
            except Exception as e:  # noqa: BLE001 - any library error is a decode failure
                raise Failure(f"decode failed: {type(e).__name__}: {e}")
            rest = len(body.getvalue()) - body.tell()
            if rest > 0:
                raise Failure(f"{rest} trailing bytes")
            out = json.dumps(plain(value), sort_keys=True, separators=(",", ":"))
        except Failure as e:
            out = f"ERROR {e}"
            failed = True
        print(f"{label}\t{out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
