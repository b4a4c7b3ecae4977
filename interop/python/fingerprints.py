"""Prints the CRC-64-AVRO (Rabin) fingerprints of Avro schema files as fastavro computes them, in the
same TSV as interop/java/Fingerprints.java (only the first line, naming the library, differs):

    "$(interop/fetch-python.sh)" interop/python/fingerprints.py SCHEMA_FILE...
    "$(interop/fetch-python.sh)" interop/python/fingerprints.py --spec

Per file: PATH <tab> fingerprint as a big-endian 64-bit hex number <tab> the 8 bytes little-endian (as
after C3 01), then '#' and the Parsing Canonical Form. A file that names a type it does not define is
loaded after the sibling .avsc files defining those names (fastavro.schema.load_schema_ordered).
Also the helpers interop/python/decode.py uses.
"""
import json
import os
import sys

import fastavro
from fastavro.schema import fingerprint, load_schema_ordered, parse_schema, to_parsing_canonical_form

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

# (schema json, published fingerprint): the same vectors as Fingerprints.java's --spec.
SPEC = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('"float"', 5583340709985441680),
    ('"double"', -8181574048448539266),
    ('"bytes"', 5746618253357095269),
    ('"string"', -8142146995180207161),
    ('["int",{"type":"boolean"}]', 5392556393470105090),
    ('{"type":"fixed","name":"foo","size":15}', 1756455273707447556),
    ('{"fields":[],"type":"record","name":"foo","namespace":"x.y"}', 5916914534497305771),
    # Published with "default":"true", which Avro Java 1.12 rejects; defaults are not in the canonical form.
    ('{"fields":[{"type":"boolean","aliases":[],"name":"f1","default":true},'
     '{"order":"descending","name":"f2","doc":"Hello","type":"int"}],'
     '"type":"record","name":"foo"}', -4860222112080293046),
    ('{"namespace":"x.y.z","type":"enum","name":"foo","doc":"foo bar","symbols":["A1","A2"]}',
     -4448647247586288245),
    ('{"items":{"type":"null"},"type":"array"}', -589620603366471059),
    ('{"values":"string","type":"map"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
    # Logical types: the canonical form is the bare primitive, so the fingerprint is the primitive's.
    ('{"type":"string","logicalType":"uuid"}', -8142146995180207161),
    ('{"type":"long","logicalType":"timestamp-millis"}', -3434872931120570953),
    ('{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}', 5746618253357095269),
]


def full_name(t, ns=""):
    name = t.get("name", "")
    if "." in name:
        return name
    space = t.get("namespace", ns)
    return f"{space}.{name}" if space else name


def names(t, ns, defined, used):
    """Collects the full names schema T defines and the names it uses."""
    if isinstance(t, str):
        if t not in PRIMITIVES:
            used.append(t if "." in t or not ns else f"{ns}.{t}")
    elif isinstance(t, list):
        for b in t:
            names(b, ns, defined, used)
    elif isinstance(t, dict):
        kind = t.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = full_name(t, ns)
            defined.add(full)
            for f in t.get("fields", []):
                names(f["type"], full.rpartition(".")[0], defined, used)
        elif kind == "array":
            names(t["items"], ns, defined, used)
        elif kind == "map":
            names(t["values"], ns, defined, used)
        else:
            names(kind, ns, defined, used)


def dependency_order(path):
    """PATH's sibling files it depends on (transitively, dependencies first), then PATH."""
    folder = os.path.dirname(os.path.abspath(path))
    by_name = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".avsc"):
            with open(os.path.join(folder, f)) as fh:
                by_name.setdefault(full_name(json.load(fh)), os.path.join(folder, f))
    order = []

    def visit(p):
        if p in order:
            return
        with open(p) as fh:
            defined, used = set(), []
            names(json.load(fh), "", defined, used)
        for n in used:
            if n not in defined and n in by_name and by_name[n] != p:
                visit(by_name[n])
        order.append(p)

    visit(os.path.abspath(path))
    return order


def load(path):
    """The schema in PATH with the named types it takes from sibling files inlined, as plain JSON."""
    order = dependency_order(path)
    if len(order) == 1:
        with open(path) as fh:
            return json.load(fh)
    return load_schema_ordered(order, _write_hint=False)


def crc64_avro(schema):
    """(Parsing Canonical Form, fingerprint as an unsigned int, its 8 bytes little-endian in hex)."""
    pcf = to_parsing_canonical_form(schema)
    le = fingerprint(pcf, "CRC-64-AVRO")  # fastavro gives the little-endian bytes, in hex
    return pcf, int.from_bytes(bytes.fromhex(le), "little"), le


def main(args):
    print(f"# fastavro {fastavro.__version__}")
    if args == ["--spec"]:
        ok = True
        for text, expected in SPEC:
            pcf, fp, le = crc64_avro(parse_schema(json.loads(text)))
            match = fp == expected % (1 << 64)
            ok &= match
            print("\t".join([text, pcf, f"{fp:016x}", le, "ok" if match else "MISMATCH"]))
        return 0 if ok else 1
    for path in args:
        pcf, fp, le = crc64_avro(load(path))
        print(f"{path}\t{fp:016x}\t{le}")
        print("#" + pcf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
