#!/usr/bin/env python3
"""Why the edge's dedup window is an append-only log (edge/src/outbox/seen.rs), not a table keyed by id.

Inserts outbox-like rows into a SQLite file (WAL, synchronous=FULL) in commits of 40 and 400 rows, each
row alone, with its id appended to a log table, or with its id in a table keyed by the (random) id, as
the outbox did before. Prints rows/s and CPU per row. Python's own overhead is in every figure alike; the
ratios are the point. Run: python3 scripts/dedup-table-experiment.py
"""
import os
import resource
import sqlite3
import tempfile
import time
import uuid


def run(mode, path, n=60000, group=40):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    c.execute("INSERT INTO meta VALUES ('next_seq', '1')")
    c.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, "
              "captured_at_ms INTEGER NOT NULL, body BLOB NOT NULL)")
    c.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY, seen_at_ms INTEGER NOT NULL) WITHOUT ROWID")
    c.execute("CREATE INDEX seen_by_age ON seen (seen_at_ms)")
    c.execute("CREATE TABLE seen_log (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, "
              "seen_at_ms INTEGER NOT NULL)")
    body = b"x" * 258
    ids = [str(uuid.uuid4()) for _ in range(n)]
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.time()
    seq = 0
    for _ in range(n // group):
        c.execute("BEGIN IMMEDIATE")
        now = int(time.time() * 1000)
        for _ in range(group):
            eid = ids[seq]
            seq += 1
            if mode == "keyed table":
                c.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (eid, now))
            elif mode == "append log":
                c.execute("INSERT INTO seen_log (event_id, seen_at_ms) VALUES (?, ?)", (eid, now))
            c.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (seq, eid, now, body))
        c.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq + 1),))
        c.execute("COMMIT")
    elapsed = time.time() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"{mode:12} commits of {group:3}: {n / elapsed:7.0f} rows/s, CPU {cpu * 1e6 / n:5.1f} us/row")
    c.close()


with tempfile.TemporaryDirectory() as d:
    for group in (40, 400):
        for mode in ("no dedup", "append log", "keyed table"):
            run(mode, os.path.join(d, "outbox.db"), group=group)
