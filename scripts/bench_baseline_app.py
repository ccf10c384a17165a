"""The baseline for benchmarks: a bare Flask app that inserts one row into SQLite per
request, with the same durability settings (WAL, synchronous=FULL) and the same gunicorn
configuration as a shelter node. Whatever a node costs beyond this is the price of its
validation, events, projections, signatures and TLS-free HTTP handling."""

from __future__ import annotations

import os
import sqlite3
import threading

from flask import Flask, jsonify, request

app = Flask(__name__)
_local = threading.local()
PATH = os.environ.get("BASELINE_DB", "/tmp/baseline.db")


def db() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(PATH, isolation_level=None, timeout=15)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT)")
        _local.conn = conn
    return conn


@app.post("/insert")
def insert():  # type: ignore[no-untyped-def]
    body = request.get_data(as_text=True)
    cur = db().execute("INSERT INTO rows (body) VALUES (?)", [body])
    return jsonify({"id": cur.lastrowid}), 201


@app.get("/read")
def read():  # type: ignore[no-untyped-def]
    """The baseline for pages that only read: one query, a small JSON answer."""
    count = db().execute("SELECT count(*) FROM rows").fetchone()[0]
    return jsonify({"rows": count})
