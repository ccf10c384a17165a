#!/usr/bin/env python3
"""HQ at prefecture scale, as JSON lines: the real 2,975 GSI shelters, with simulated
evacuees registered (households of one to four) and checked in, loaded through HQ's real
ingest path (sync.apply, projections, outbox, marks); then p50/p95 of
GET /api/v1/summary, GET /api/v1/shelters, the dashboard page (/hq) and the large map
(/hq/map) under concurrent clients, against the real `shelter` WSGI app in gunicorn, at
each size in --evacuees (so that "flat as evacuees grow" is measured), with the bare
baseline app's GET in the same run. At the largest size, the summary and the dashboard
again while a --backlog of check-ins and check-outs (200 nodes' batches) is stored into
HQ's log and projected by HQ's projector in the server (HQ stores first, projects after).

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
import threading
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
from sync import log as hq_log  # noqa: E402
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


def backlog_batches(hq: NodeContext, shelters: list[Shelter], events: int,
                    rng: random.Random) -> list[tuple[Shelter, list[dict]]]:
    """``events`` check-outs and check-ins of people registered at 200 shelters, each
    shelter's in its node's batches of up to 500 (as 200 nodes coming back online send
    them), the batches of all of them interleaved."""
    out: list[tuple[Shelter, list[dict]]] = []
    nodes = rng.sample([s for s in shelters if s.seq > 0], min(200, len(shelters)))
    per_node = events // len(nodes)
    for shelter in nodes:
        people = [r[0] for r in hq.db.execute(
            "SELECT person_id FROM persons WHERE issuing_shelter = ? LIMIT 500",
            [shelter.shelter_id])]
        batch: list[dict] = []
        for n in range(per_node):
            batch.append(shelter.event("presence_changed", {
                "person_id": people[(n // 2) % len(people)], "shelter_id": shelter.shelter_id,
                "action": "check_out" if n % 2 == 0 else "check_in", "destination": "",
                "destination_detail": "", "actor": "bench"}))
            if len(batch) == 500:
                out.append((shelter, batch))
                batch = []
        if batch:
            out.append((shelter, batch))
    rng.shuffle(out)
    return out


def streaming(hq: NodeContext, shelters: list[Shelter], size: int, hq_port: int, token: str,
              clients: int, seconds: float, events: int, rng: random.Random) -> None:
    """The summary's and the dashboard's p50/p95 while ``events`` events arrive in HQ's log
    (stored as the /sync socket stores them, from this process) and HQ's projector, in the
    server, applies them: what staff see while 200 nodes catch up."""
    with sqlite3.connect(hq.db_path) as conn:  # the log takes over where the load ended
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         [("projected_log_id", str(hq_log.head(hq_log.of(hq.data_dir))))])
    log_conn = hq_log.of(hq.data_dir)
    with hq_log.writing(log_conn):
        log_conn.executemany("INSERT OR REPLACE INTO log_origins (origin, shelter_id, "
                             "logged_seq) VALUES (?, ?, ?)",
                             [(s.node_id, s.shelter_id, s.seq) for s in shelters])
    batches = backlog_batches(hq, shelters, events, rng)
    total = sum(len(b) for _, b in batches)
    stored_at: list[float] = []

    def send() -> None:  # paced over the measurement: the nodes' batches keep arriving
        started = time.perf_counter()
        for n, (shelter, batch) in enumerate(batches):
            logged = hq_log.ingest(log_conn, shelter.node_id, shelter.shelter_id, batch,
                                   int(time.time() * 1000))
            assert logged.stored == len(batch), logged
            due = started + seconds * (n + 1) / len(batches)
            time.sleep(max(0.0, due - time.perf_counter()))
        stored_at.append(time.perf_counter() - started)

    headers = {"Authorization": f"Bearer {token}"}
    first_position = hq_log.head(log_conn)
    sender = threading.Thread(target=send)
    started = time.perf_counter()
    sender.start()
    results = {}
    for name, path in (("summary", "/api/v1/summary"), ("dashboard", "/hq")):
        results[name] = benchlib.load("hq", hq_port, path, headers, clients, seconds / 2,
                                      None, 200, method="GET")
    with sqlite3.connect(f"file:{hq.db_path}?mode=ro", uri=True) as conn:
        through = int(conn.execute("SELECT value FROM meta WHERE key = 'projected_log_id'"
                                   ).fetchone()[0])
    projected_while_measured = through - first_position  # while the pages were measured
    sender.join()
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{hq.db_path}?mode=ro", uri=True) as conn:
            through = int(conn.execute("SELECT value FROM meta WHERE key = "
                                       "'projected_log_id'").fetchone()[0])
        if through >= hq_log.head(log_conn):
            break
        time.sleep(0.1)
    projected_in = time.perf_counter() - started
    for name, figures in results.items():
        emit(part="latency_while_streaming", target=name, evacuees=size, clients=clients,
             backlog_events=total, failures=figures["failures"],
             per_second=figures["per_second"], p50_ms=figures["p50_ms"],
             p95_ms=figures["p95_ms"])
    emit(part="streaming", evacuees=size, backlog_events=total,
         stored_over_seconds=round(stored_at[0], 2) if stored_at else None,
         projected_in_seconds=round(projected_in, 2),
         projected_while_measured=projected_while_measured,
         projected_events_per_second=round(total / projected_in))


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
    parser.add_argument("--backlog", type=int, default=100_000,
                        help="at the largest size, the summary and dashboard again while "
                             "this many events stream into HQ's log and are projected "
                             "(0: skip)")
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
                if args.backlog and size == max(args.evacuees):
                    streaming(hq, shelters, size, hq_port, token, args.clients,
                              args.seconds, args.backlog, rng)
            finally:
                benchlib.stop(app, base)
        hq.db.conn.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
