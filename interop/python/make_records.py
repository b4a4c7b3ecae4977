"""Writes sample records for the decoders, `<label>\t<hex>` a line, with fastavro's schemaless_writer:
single-object records (C3 01, fingerprint, body) of every released schema, values chosen to exercise
the JSON rendering (unions, enums, maps, escapes, non-ASCII, awkward doubles), a Confluent-framed one
(schema id 7 = released/edge_event/v2.avsc) and three that must fail.

    "$(interop/fetch-python.sh)" interop/python/make_records.py SCHEMA_DIR > interop/sample-records.tsv
"""
import io
import json
import os
import sys

import fastavro

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
from decode import without_logical_types
from fingerprints import crc64_avro

UUID = "4b1f8c2e-9d3a-4e5f-8a6b-7c8d9e0f1a2b"
TS = 1767225600123

INSPECTION = {
    "event_id": UUID, "event_type": "DEFECT_DETECTED", "timestamp": TS, "inspection_id": "insp-1",
    "batch_id": "b-7", "chip_id": "chip-42", "inspection_type": "XRAY", "status": "in \"progress\"\n",
    "quality_score": 0.1,
    "defects": [
        {"defect_type": "VOID", "severity": "HIGH", "confidence": 0.95, "location": "die(3,4)"},
        {"defect_type": "SCRATCH", "severity": "LOW", "confidence": 1e-05, "location": "Größe ✓ 🚀"},
    ],
    "metadata": {"zeta": "last", "alpha": "tab\there", "Zed": "\x7f\x01\\/", "émigré": ""},
}
SYSTEM = {"event_id": UUID, "event_type": "OUTBOX_DROPPED", "timestamp": TS, "component": "outbox",
          "message": "dropped 3 records", "details": {"first_lost": "17", "last_lost": "19"}}
MANUFACTURING = {"event_id": UUID, "event_type": "LOT_COMPLETED", "timestamp": TS, "batch_id": "b-7",
                 "lot_id": None, "product_id": "p-1", "quantity": 9007199254740993, "status": "done",
                 "metadata": {}}
INFERENCE = {"event_id": UUID, "event_type": "INFERENCE_COMPLETED", "timestamp": -1,
             "inspection_id": "insp-1", "model_name": "resnet", "model_version": "1.2.3",
             "prediction": "OK", "confidence": 0.30000000000000004, "latency_ms": -9223372036854775808,
             "metadata": {"k": "v"}}


def envelope(payload, event_type):
    return {"event_type": event_type, "event_id": UUID, "timestamp": TS, "trace_id": "t-1",
            "source_service": "linegate-edge", "schema_version": "1.0.0", "station_id": "st-1",
            "seq": 9223372036854775807, "payload": payload}


AUDIT = {"event_id": UUID, "timestamp": TS, "source_service": "linegate-bridge", "schema_version": "2.0.0",
         "outcome": "REJECTED", "subject_event_id": None, "event_type": "X", "station_id": "st-1",
         "seq": 5, "reason": "bad", "source_topic": "ingest", "source_partition": 2147483647,
         "source_offset": 0, "payload_sha256": "ab" * 32, "outputs": ["a", "b"]}
AUDIT_V2 = dict(AUDIT, outcome="GAP", prev_audit_sha256="cd" * 32, gap_first_seq=3, gap_last_seq=4)
QUALITY = {"event_id": UUID, "event_type": "QUALITY_VERDICT", "timestamp": TS, "trace_id": "t",
           "source_service": "linegate-bridge", "schema_version": "1.0.0", "source_event_id": UUID,
           "station_id": "st-1", "seq": 1, "inspection_id": "i", "batch_id": "b", "chip_id": "c",
           "inspection_type": "VISUAL", "quality_score": 1.0, "threshold": 0.8, "verdict": "PASS",
           "defect_count": 0, "reason": "score 1.0 >= 0.8"}
WINDOW = {"start": 0, "end": 60000, "count": 3, "fail_count": 1, "fail_rate": 1 / 3, "scored_count": 3,
          "mean_score": 1e16, "stddev_score": float("nan"), "lsl": -0.0, "usl": float("inf"),
          "cp": 123456789.125, "cpk": 5e-324}

SAMPLES = [  # (label, kind, version, value)
    ("audit_v1", "audit_event", 1, dict(AUDIT, outcome="ACCEPTED")),
    ("audit_v2", "audit_event", 2, AUDIT_V2),
    ("edge_v1_inspection", "edge_event", 1, envelope(INSPECTION, "DEFECT_DETECTED")),
    ("edge_v2_inspection", "edge_event", 2, envelope(INSPECTION, "DEFECT_DETECTED")),
    ("edge_v2_system", "edge_event", 2, envelope(SYSTEM, "OUTBOX_DROPPED")),
    ("edge_v2_manufacturing", "edge_event", 2, envelope(MANUFACTURING, "LOT_COMPLETED")),
    ("edge_v2_inference", "edge_event", 2, envelope(INFERENCE, "INFERENCE_COMPLETED")),
    ("inference_v1", "inference_event", 1, INFERENCE),
    ("inspection_v1", "inspection_event", 1, dict(INSPECTION, defects=[], quality_score=None)),
    ("manufacturing_v1", "manufacturing_event", 1, MANUFACTURING),
    ("quality_v1", "quality_event", 1, QUALITY),
    ("quality_v2_window", "quality_event", 2, dict(QUALITY, event_type="QUALITY_WINDOW", verdict=None, batch_id=None,
                                                  window=WINDOW)),
    ("system_v1", "system_event", 1, SYSTEM),
]


def main(schema_dir):
    def load(kind, version):
        with open(os.path.join(schema_dir, "released", kind, f"v{version}.avsc")) as fh:
            return json.load(fh)

    def body(schema, value):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(without_logical_types(schema)), value)
        return out.getvalue()

    for label, kind, version, value in SAMPLES:
        schema = load(kind, version)
        print(f"{label}\tc301{crc64_avro(schema)[2]}{body(schema, value).hex()}")
    edge = load("edge_event", 2)
    print(f"confluent_edge_v2\t00{7:08x}{body(edge, envelope(SYSTEM, 'OUTBOX_DROPPED')).hex()}")
    system = crc64_avro(load("system_event", 1))[2]
    print(f"error_unknown_fingerprint\tc3010011223344556677{body(load('system_event', 1), SYSTEM).hex()}")
    print(f"error_trailing_bytes\tc301{system}{body(load('system_event', 1), SYSTEM).hex()}00")
    print("error_bad_hex\tc301zz")


if __name__ == "__main__":
    main(sys.argv[1])
