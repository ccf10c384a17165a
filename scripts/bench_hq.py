#!/usr/bin/env python3
"""HQ at prefecture scale, as JSON lines: the real 2,975 GSI shelters, with simulated
evacuees registered (households of one to four) and checked in, loaded through HQ's real
ingest path (sync.apply, projections, outbox, marks); then p50/p95 of
GET /api/v1/summary, GET /api/v1/shelters, the dashboard page (/hq) and the large map
(/hq/map) under concurrent clients, against the real `shelter` WSGI app in gunicorn, at
each size in --evacuees (so that "flat as evacuees grow" is measured), with the bare
baseline app's GET in the same run.

    .venv/bin/python scripts/bench_hq.py [--evacuees 150000 1500000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import benchlib  # noqa: E402
from scripts.bench_sync import kana  # noqa: E402
from shelter.core import server, shortcode  # noqa: E402
from shelter.core.events import new_id  # noqa: E402
from shelter.core.node import NodeContext  # noqa: E402
from shelter.domain import accounts  # noqa: E402
from shelter.hq import outlines  # noqa: E402
from shelter.hq.shelters import import_file  # noqa: E402
from sync.apply import apply_batch  # noqa: E402

GSI = ROOT.parent / "shared" / "data" / "osaka-designated-shelters.geojson"
FAMILY = ["田中", "鈴木", "高橋", "伊藤", "渡辺", "中村", "小林", "加藤", "吉田", "山本"]
KANA = ["たなか", "すずき", "たかはし", "いとう", "わたなべ", "なかむら", "こばやし", "かとう",
        "よしだ", "やまもと"]
BORN = date(1930, 1, 1)
NEEDS = ["elderly", "infant", "wheelchair", "allergy", "chronic_illness", "pregnant_nursing"]


def emit(**fields: object) -> None:
    print(json.dumps({"bench": "hq", **fields}, ensure_ascii=False), flush=True)


class Shelter:
    """One shelter's node, as HQ sees it: its own id, sequence and clock."""

    def __init__(self, shelter_id: str, n: int) -> None:
        self.shelter_id = shelter_id
        self.node_id = f"B{n:09d}"
        self.seq = 0
        self.counter = 0

    def event(self, kind: str, payload: dict) -> dict:
        self.seq += 1
        self.counter += 1
        now = time.time_ns() // 1_000_000
        return {"event_id": new_id(), "node_id": self.node_id, "seq": self.seq,
                "hlc": f"{now:015d}.{self.counter:08d}.{self.node_id}", "type": kind,
                "schema_version": 1, "payload": payload,
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())}


def short_code(n: int) -> str:
    data = ""
    for _ in range(shortcode.DATA_LENGTH):
        n, digit = divmod(n, len(shortcode.ALPHABET))
        data += shortcode.ALPHABET[digit]
    return data + shortcode.check_char(data)


def load_evacuees(hq: NodeContext, shelters: list[Shelter], start: int, end: int,
                  rng: random.Random) -> int:
    """People number start..end-1 register in households at a random shelter; nine in ten
    check in. Returns the number of events applied."""
    pending: dict[str, list[dict]] = {}
    waiting = applied = 0
    person = start
    while person < end:
        shelter = rng.choice(shelters)
        size = min(rng.choice((1, 1, 2, 2, 3, 4)), end - person)
        whereabouts = rng.choices(("shelter", "home", "car"), (85, 10, 5))[0]
        members = []
        for _ in range(size):
            f = rng.randrange(len(FAMILY))
            members.append({
                "person_id": new_id(), "family_name": FAMILY[f], "given_name": f"{person}",
                "family_name_kana": KANA[f], "given_name_kana": kana(person),
                "birth_date": (BORN + timedelta(days=rng.randrange(95 * 365))).isoformat(),
                "sex": rng.choice(("female", "male")),
                "needs": rng.sample(NEEDS, k=rng.choice((0, 0, 0, 1, 2))), "allergies": "",
                "short_code": short_code(person), "card_code": ""})
            person += 1
        events = pending.setdefault(shelter.shelter_id, [])
        events.append(shelter.event("household_registered", {
            "household_id": new_id(), "shelter_id": shelter.shelter_id, "address": "大阪府",
            "postal_code": "", "phone": "", "whereabouts": whereabouts, "consent": "relatives",
            "language": "ja", "members": members}))
        waiting += 1
        if whereabouts == "shelter":
            for m in members:
                if rng.random() < 0.9:
                    waiting += 1
                    events.append(shelter.event("presence_changed", {
                        "person_id": m["person_id"], "shelter_id": shelter.shelter_id,
                        "action": "check_in", "destination": "", "destination_detail": "",
                        "actor": "bench"}))
        if waiting >= 50_000 or person >= end:
            by_id = {s.shelter_id: s for s in shelters}
            with hq.store.write():  # one commit for many shelters' small batches
                for shelter_id, batch in pending.items():
                    result = apply_batch(hq.store, by_id[shelter_id].node_id, shelter_id,
                                         batch)
                    assert not result.quarantined and not result.conflicts, result
                    applied += result.applied
            pending.clear()
            waiting = 0
    return applied


def wait_refreshed(db_path: Path, timeout: float = 1800) -> float:
    """Until HQ's refresher has recomputed every marked shelter; returns seconds taken."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            left = conn.execute("SELECT count(*) FROM hq_dirty").fetchone()[0]
        finally:
            conn.close()
        if left == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit("HQ did not finish computing the shelters' numbers")


def measure(size: int, hq_port: int, base_port: int, token: str, clients: int,
            seconds: float, rounds: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    targets = [("summary", hq_port, "/api/v1/summary", headers),
               ("shelters", hq_port, "/api/v1/shelters", headers),
               ("dashboard", hq_port, "/hq", headers),
               ("map", hq_port, "/hq/map", headers),
               ("baseline", base_port, "/read", {})]
    for name, port, path, h in targets:  # warm up
        benchlib.load("hq", port, path, h, clients, 1.0, None, 200, method="GET")
    results: dict[str, list[dict[str, float]]] = {t[0]: [] for t in targets}
    for _ in range(rounds):
        for name, port, path, h in targets:
            results[name].append(benchlib.load("hq", port, path, h, clients, seconds, None,
                                               200, method="GET"))
    base = {k: statistics.median(r[k] for r in results["baseline"]) for k in ("p50_ms",
                                                                            "p95_ms")}
    for name, rs in results.items():
        figures = {k: statistics.median(r[k] for r in rs) for k in ("per_second", "p50_ms",
                                                                  "p95_ms")}
        emit(part="latency", target=name, evacuees=size, clients=clients,
             summary="median of rounds", failures=sum(r["failures"] for r in rs), **figures,
             p95_ratio_to_baseline=round(figures["p95_ms"] / base["p95_ms"], 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evacuees", type=int, nargs="+", default=[150_000, 1_500_000])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        hq = NodeContext(tmp / "hq", role="hq")
        # Loading 1.5 million people is not what is measured: a large page cache for this
        # one connection makes it minutes instead of an hour.
        hq.db.conn.execute("PRAGMA cache_size = -524288")
        import_file(hq.store, GSI)
        outlines.refresh(hq.store)  # as `shelter hq import` does: the map's outlines
        token = accounts.create_token(hq.store, "operator")
        ids = [r[0] for r in hq.db.execute("SELECT shelter_id FROM hq_shelters ORDER BY 1")]
        shelters = [Shelter(s, n) for n, s in enumerate(ids)]
        with hq.store.write() as db:
            db.conn.executemany("INSERT INTO sync_origins (node_id, shelter_id) VALUES (?, ?)",
                                [(s.node_id, s.shelter_id) for s in shelters])
        loaded = 0
        if os.environ.get("BENCH_HQ_KEEP"):  # for profiling: load, then stop
            load_evacuees(hq, shelters, 0, args.evacuees[0], rng)
            hq.db.conn.close()
            os.rename(tmp / "hq", os.environ["BENCH_HQ_KEEP"])
            return 0
        for size in sorted(args.evacuees):
            started = time.perf_counter()
            events = load_evacuees(hq, shelters, loaded, size, rng)
            emit(part="load", evacuees=size, events_applied=events,
                 seconds=round(time.perf_counter() - started, 1),
                 events_per_second=round(events / (time.perf_counter() - started)))
            loaded = size
            hq_port, base_port = server.free_loopback_port(), server.free_loopback_port()
            app = benchlib.start("shelter.wsgi:application",
                                 server.app_env(hq.data_dir, ROLE="hq"), hq_port)
            base = benchlib.start("scripts.bench_baseline_app:app",
                                  {"BASELINE_DB": str(tmp / "baseline.db")}, base_port)
            try:
                emit(part="refresh", evacuees=size, shelters=len(shelters),
                     seconds=round(wait_refreshed(hq.db_path), 1))
                measure(size, hq_port, base_port, token, args.clients, args.seconds,
                        args.rounds)
            finally:
                benchlib.stop(app, base)
        hq.db.conn.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
