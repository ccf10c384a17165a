#!/usr/bin/env python3
"""Sync throughput, as JSON lines:

(a) backlog: one node with --events events (registrations and check-ins) catching up with
    a fresh HQ through the real `shelter node` and `shelter hq` processes: events per second
    acknowledged (stored in HQ's log) and end to end (projected into HQ's read models), the
    projector's lag behind the log (p99 of samples every 20 ms), bytes per event on the wire
    (compressed batches),
    HQ's peak memory (the gunicorn worker's VmHWM), and the CPU time each side spent per
    event (what decides the rate on a 2-core machine);
(b) floor, in the same round: the same rows as the same zlib-compressed JSON batches over a
    loopback socket into a bare receiver that inserts them into SQLite (WAL,
    synchronous=FULL); and the ratio of each rate of (a) to it;
(c) reconnect: --nodes nodes with --per-node events each connecting at once (sync clients
    in this process, HQ real): seconds until all are stored and until all are projected,
    and the projector's lag meanwhile (p99 and max of samples every 0.2 s).

(d) thin link: --thin-events events pushed over a link that cuts every connection after
    --thin-kb KB, and over a plain one, interleaved --rounds times: events per second
    delivered to HQ on each, and the ratio (scripts/bench_sync_thin.py; 0 events skips it).

(a) and (b) run --rounds times, interleaved; the summary line gives their medians.

    .venv/bin/python scripts/bench_sync.py [--events 100000] [--rounds 3] [--nodes 200]
        [--per-node 500] [--thin-events 2000] [--thin-kb 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import sqlite3
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import benchlib  # noqa: E402
from shelter.core import server  # noqa: E402
from shelter.core.authority import Batch, Sender, refusal  # noqa: E402
from shelter.core.node import NodeContext  # noqa: E402
from shelter.domain.households import register_household  # noqa: E402
from sync import client, enrollment, projector, protocol  # noqa: E402
from sync import log as hq_log  # noqa: E402

SHELTER = str(Path(sys.executable).parent / "shelter")


def emit(**fields: object) -> None:
    print(json.dumps({"bench": "sync", **fields}, ensure_ascii=False), flush=True)


def kana(n: int) -> str:
    """A distinct reading per person (people with the same reading and birth date are
    flagged as possible duplicates, which real registrations rarely are)."""
    letters = "あいうえおかきくけこさしすせそたちつてとなにぬねの"
    out = ""
    while True:
        n, digit = divmod(n, len(letters))
        out += letters[digit]
        if not n:
            return out


def birth_date(n: int) -> str:
    return f"{1930 + n % 90}-{1 + n % 12:02d}-{1 + n % 28:02d}"


def fill(ctx: NodeContext, events: int) -> None:
    """Registrations (one in twenty events) and presence changes, as a desk makes them."""
    households = max(1, events // 20)
    people: list[str] = []
    with ctx.store.write():
        for n in range(households):
            result = register_household(ctx.store, ctx.identity, {
                "address": "大阪市", "whereabouts": "shelter", "consent": "relatives",
                "members": [{"family_name": "試験", "given_name": str(n),
                             "family_name_kana": "しけん", "given_name_kana": kana(n),
                             "birth_date": birth_date(n)}]})
            people.append(result["members"][0]["person_id"])
    cycle = ("check_in", "go_out", "return", "go_out", "return", "check_out")
    remaining = events - households
    done = 0
    while done < remaining:
        with ctx.store.write():
            for _ in range(min(5000, remaining - done)):
                person = people[done % len(people)]
                action = cycle[(done // len(people)) % len(cycle)]
                ctx.store.append("presence_changed", {
                    "person_id": person, "shelter_id": ctx.shelter_id, "action": action,
                    "destination": "home" if action == "check_out" else "",
                    "destination_detail": "", "actor": "bench"})
                done += 1


def wire_events(ctx: NodeContext) -> list[dict]:
    return [protocol.for_wire(r) for r in ctx.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [ctx.node_id])]


def hq_acked(hq_db: Path, node_id: str) -> int:
    """How far HQ's read models (``hq_db``) have projected a node's sequence."""
    conn = sqlite3.connect(f"file:{hq_db}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT acked_seq FROM sync_origins WHERE node_id = ?",
                           [node_id]).fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


class Progress:
    """How far a running HQ (its data directory) has a node: stored in its log (what it
    acknowledges), projected into its read models, and the projector's lag behind the log
    in seconds (the oldest row not projected yet)."""

    def __init__(self, hq_data: Path) -> None:
        self.hq_data = hq_data
        self.log: sqlite3.Connection | None = None
        self.db: sqlite3.Connection | None = None

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self.log is None or self.db is None:
            self.log = sqlite3.connect(f"file:{self.hq_data / 'log.db'}?mode=ro", uri=True,
                                       timeout=30, isolation_level=None)
            self.db = sqlite3.connect(f"file:{self.hq_data / 'shelter.db'}?mode=ro",
                                      uri=True, timeout=30, isolation_level=None)
        return self.log, self.db

    def logged(self, node_id: str) -> int:
        try:
            row = self._open()[0].execute("SELECT logged_seq FROM log_origins WHERE "
                                          "origin = ?", [node_id]).fetchone()
        except sqlite3.OperationalError:  # not made yet
            self.log = None
            return 0
        return int(row[0]) if row else 0

    def projected(self, node_id: str) -> int:
        row = self._open()[1].execute("SELECT acked_seq FROM sync_origins WHERE node_id = ?",
                                      [node_id]).fetchone()
        return int(row[0]) if row else 0

    def lag_seconds(self) -> float:
        log, db = self._open()
        through = db.execute("SELECT value FROM meta WHERE key = 'projected_log_id'"
                             ).fetchone()
        row = log.execute("SELECT received_ms FROM log WHERE log_id > ? ORDER BY log_id "
                          "LIMIT 1", [int(through[0]) if through else 0]).fetchone()
        return max(0.0, time.time() - row[0] / 1000) if row else 0.0

    def close(self) -> None:
        for conn in (self.log, self.db):
            if conn is not None:
                conn.close()


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


def peak_kib(pids: list[int]) -> int:
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak


def start_hq(data: Path, replica: Path | None = None
             ) -> tuple[subprocess.Popen[bytes], Path, int]:
    """A fresh HQ on ``data`` (streaming to ``replica`` with Litestream, when given): its
    process, data directory and port."""
    NodeContext(data, role="hq").db.conn.close()
    port = server.free_loopback_port()
    extra = ["--replica", str(replica)] if replica is not None else []
    process = subprocess.Popen([SHELTER, "hq", "--data", str(data), "--port", str(port),
                                "--host", "127.0.0.1", *extra], stdout=subprocess.DEVNULL,
                               start_new_session=True)
    server.wait_for_https(port, 60)
    return process, data, port


def enroll(hq_data: Path, port: int, ctx: NodeContext) -> None:
    hq = NodeContext(hq_data, role="hq")
    der = ssl.PEM_cert_to_DER_cert((hq_data / "tls" / "ca.crt").read_text())
    with hq.store.write() as db:
        code = enrollment.issue_code(db, ctx.shelter_id, der)
    hq.db.conn.close()
    client.enroll(ctx, f"https://127.0.0.1:{port}", code)


def receive_floor(db_path: str, listener: socket.socket) -> None:
    """The bare receiver (its own process, as HQ is): each length-prefixed batch inflated,
    parsed and inserted in one transaction, then acknowledged with one byte."""
    conn, _ = listener.accept()
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (event_id TEXT PRIMARY KEY, node_id TEXT, seq INT, "
               "hlc TEXT, type TEXT, schema_version INT, payload TEXT, recorded_at TEXT)")
    stream = conn.makefile("rb")
    while header := stream.read(4):
        body = stream.read(struct.unpack("!I", header)[0])
        batch = json.loads(zlib.decompress(body))["events"]
        db.execute("BEGIN")
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            (e["event_id"], e["node_id"], e["seq"], e["hlc"], e["type"],
             e["schema_version"], json.dumps(e["payload"], ensure_ascii=False),
             e["recorded_at"]) for e in batch])
        db.execute("COMMIT")
        conn.sendall(b"k")
    db.close()
    conn.close()


def floor(events: list[dict], db_path: Path) -> float:
    """The same batches over a loopback socket into the bare receiver, with as many batches
    in flight as the real client allows (client.WINDOW)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    receiver = multiprocessing.get_context("fork").Process(
        target=receive_floor, args=(str(db_path), listener))
    receiver.start()
    texts = [protocol.wire_text(e) for e in events]
    sender = socket.create_connection(listener.getsockname())
    window = threading.Semaphore(client.WINDOW)
    frames = 0

    def count_acks() -> None:
        while sender.recv(1):
            window.release()

    started = time.perf_counter()
    reader = threading.Thread(target=count_acks)
    reader.start()
    for frames, batch in enumerate(protocol.batches(texts), 1):
        window.acquire()
        frame = protocol.encode_batch(frames, batch)
        sender.sendall(struct.pack("!I", len(frame)) + frame)
    for _ in range(client.WINDOW):
        window.acquire()  # every batch acknowledged
    elapsed = time.perf_counter() - started
    sender.shutdown(socket.SHUT_WR)
    reader.join()
    sender.close()
    receiver.join()
    listener.close()
    return len(events) / elapsed


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes, and of their children already reaped."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def backlog(tmp: Path, events: int, replica: bool = False) -> dict[str, float]:
    """One round of (a) and (b): a node filled with ``events`` events catching up with a
    fresh HQ (``replica``: one streaming its database with Litestream, whose CPU counts as
    HQ's), then the floor with the same rows."""
    hq, hq_data, hq_port = start_hq(tmp / "hq", tmp / "replica" if replica else None)
    try:
        ctx = NodeContext(tmp / "node", shelter_id="E2710000000001")
        started = time.perf_counter()
        fill(ctx, events)
        generated = time.perf_counter() - started
        enroll(hq_data, hq_port, ctx)
        rows = wire_events(ctx)
        total = len(rows)
        wire_bytes = sum(len(protocol.encode_batch(n, b))
                         for n, b in enumerate(protocol.batches(rows)))
        checkins = [e for e in rows if e["type"] == "presence_changed"][:5000]
        checkin_bytes = sum(len(protocol.encode_batch(n, b))
                            for n, b in enumerate(protocol.batches(checkins)))
        hq_pids = [hq.pid, *descendants(hq.pid)]
        hq_cpu = cpu_seconds(hq_pids)
        node_port = server.free_loopback_port()
        started = time.perf_counter()
        node = subprocess.Popen([SHELTER, "node", "--data", str(ctx.data_dir), "--port",
                                 str(node_port), "--host", "127.0.0.1", "--hq",
                                 f"https://127.0.0.1:{hq_port}"],
                                stdout=subprocess.DEVNULL, start_new_session=True)
        progress = Progress(hq_data)
        try:
            first_at = acked_at = None
            lags: list[float] = []
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                stored = progress.logged(ctx.node_id)
                if stored and first_at is None:
                    first_at = time.perf_counter()
                if stored >= total and acked_at is None:
                    acked_at = time.perf_counter()
                if stored:
                    lags.append(progress.lag_seconds())
                if progress.projected(ctx.node_id) >= total:
                    break
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            acked_elapsed = (acked_at or time.perf_counter()) - started
            startup = (first_at or started) - started
            node_cpu = cpu_seconds([node.pid, *descendants(node.pid)])
            hq_cpu = cpu_seconds(hq_pids) - hq_cpu
        finally:
            progress.close()
            benchlib.stop(node)
        ctx.db.conn.close()
        result = {
            "events": total, "seconds": round(elapsed, 2),
            "startup_seconds": round(startup, 2),
            # Acknowledged: stored in HQ's log. Projected: in HQ's figures (end to end).
            "acknowledged_events_per_second": round(total / acked_elapsed),
            "events_per_second": round(total / elapsed),
            # The same from HQ's first stored event, the node's start and handshake left
            # out, as the floor leaves out its own (its texts are made and its connection
            # open before its clock starts).
            "acknowledged_transfer_events_per_second": round(
                total / max(acked_elapsed - startup, 1e-9)),
            "transfer_events_per_second": round(total / max(elapsed - startup, 1e-9)),
            "projector_lag_p99_seconds": round(p99(lags), 2),
            "node_cpu_us_per_event": round(node_cpu / total * 1e6, 1),
            "hq_cpu_us_per_event": round(hq_cpu / total * 1e6, 1),
            "bytes_per_event": round(wire_bytes / total, 1),
            "bytes_per_checkin_event": round(checkin_bytes / max(len(checkins), 1), 1),
            "hq_peak_memory_mib": round(peak_kib(hq_pids) / 1024, 1),
            "generated_in_seconds": round(generated, 1)}
    finally:
        benchlib.stop(hq)
    result["check_us_per_event"] = authority_cost(rows, ctx.shelter_id, tmp / "check")
    result["check_share_of_hq_cpu"] = round(result["check_us_per_event"]
                                            / result["hq_cpu_us_per_event"], 4)
    emit(part="backlog", replica=replica, **result)
    result["floor_events_per_second"] = round(floor(rows, tmp / "floor.db"))
    result["ratio"] = round(result["events_per_second"] / result["floor_events_per_second"], 3)
    result["acknowledged_ratio"] = round(result["acknowledged_events_per_second"]
                                         / result["floor_events_per_second"], 3)
    result["acknowledged_transfer_ratio"] = round(
        result["acknowledged_transfer_events_per_second"] / result["floor_events_per_second"], 3)
    result["transfer_ratio"] = round(result["transfer_events_per_second"]
                                     / result["floor_events_per_second"], 3)
    result["projector_alone_us_per_event"] = projector_alone(hq_data, total)
    emit(part="floor", events=total, events_per_second=result["floor_events_per_second"],
         acknowledged_to_floor=result["acknowledged_ratio"],
         projected_to_floor=result["ratio"],
         acknowledged_transfer_to_floor=result["acknowledged_transfer_ratio"],
         projected_transfer_to_floor=result["transfer_ratio"],
         projector_alone_us_per_event=result["projector_alone_us_per_event"])
    return result


def projector_alone(hq_data: Path, events: int) -> float:
    """The projector's CPU per event with nothing else running: the round's HQ log (HQ
    stopped) projected into fresh read models in this process, in µs. With the two sides'
    CPU per event it bounds what a rate end to end can be on a machine's cores."""
    fresh = hq_data.parent / "projected-alone"
    ctx = NodeContext(fresh, role="hq")
    shutil.copyfile(hq_data / "log.db", fresh / "log.db")
    started = time.process_time()
    projected = projector.project_all(ctx)
    cpu = time.process_time() - started
    hq_log.forget_connections()
    ctx.db.conn.close()
    if projected < events:
        raise SystemExit(f"the projector alone projected {projected} of {events}")
    return round(cpu / events * 1e6, 1)


def authority_cost(rows: list[dict], shelter_id: str, data: Path, repeats: int = 5) -> float:
    """What HQ's "may this sender say this?" costs per event (shelter/core/authority.py), on
    the backlog's own events against an HQ store that has not seen them (so every lookup a
    new registration needs is made), in this process: the median over ``repeats`` passes,
    in µs. Quoted against HQ's CPU per event in the same round (check_share_of_hq_cpu)."""
    sender = Sender("node", "hq", shelter_id)
    db = NodeContext(data, role="hq").db
    times = []
    for _ in range(repeats):
        said = Batch()
        started = time.perf_counter()
        for raw in rows:
            if refusal(db, sender, raw["type"], raw["payload"], raw["node_id"], said) is None:
                said.note(raw["type"], raw["payload"])
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) / len(rows) * 1e6, 3)


def reconnect(tmp: Path, nodes: int, per_node: int) -> None:
    """(c): ``nodes`` nodes, ``per_node`` events each, all connecting to HQ at once."""
    hq, hq_data, hq_port = start_hq(tmp / "hq")
    try:
        contexts = []
        for i in range(nodes):
            node_ctx = NodeContext(tmp / f"n{i}", shelter_id=f"E27100001{i:05d}")
            fill(node_ctx, per_node)
            enroll(hq_data, hq_port, node_ctx)
            contexts.append(node_ctx)
        stop = threading.Event()
        started = time.perf_counter()
        for node_ctx in contexts:
            client.SyncClient(node_ctx.data_dir, stop, max_backoff=2.0).start()
        stored = {n.node_id: n for n in contexts}
        waiting = dict(stored)
        progress, lags = Progress(hq_data), []
        acked_elapsed = None
        deadline = time.monotonic() + 300
        while waiting and time.monotonic() < deadline:
            for node_id in list(stored):
                if progress.logged(node_id) >= per_node:
                    del stored[node_id]
            if not stored and acked_elapsed is None:
                acked_elapsed = time.perf_counter() - started
            for node_id in list(waiting):
                if progress.projected(node_id) >= per_node:
                    del waiting[node_id]
            lags.append(progress.lag_seconds())
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        progress.close()
        stop.set()
        emit(part="reconnect", nodes=nodes, events_each=per_node,
             caught_up=nodes - len(waiting), seconds=round(elapsed, 2),
             acknowledged_seconds=round(acked_elapsed or elapsed, 2),
             projector_lag_p99_seconds=round(p99(lags), 2),
             projector_lag_max_seconds=round(max(lags, default=0.0), 2),
             hq_peak_memory_mib=round(peak_kib(descendants(hq.pid)) / 1024, 1))
    finally:
        benchlib.stop(hq)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--per-node", type=int, default=500)
    parser.add_argument("--thin-events", type=int, default=2000)
    parser.add_argument("--thin-kb", type=float, default=8.0)
    parser.add_argument("--replica", action="store_true",
                        help="also run each backlog round against an HQ streaming to a "
                             "Litestream replica, and report the rate's ratio to the plain "
                             "HQ's in the same round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rounds, replicated = [], []
        for n in range(args.rounds):
            rounds.append(backlog(tmp / f"round{n}", args.events))
            if args.replica:
                replicated.append(backlog(tmp / f"replica{n}", args.events, replica=True))
        if replicated:
            ratios = [r["events_per_second"] / p["events_per_second"]
                      for r, p in zip(replicated, rounds, strict=True)]
            emit(part="replica_median", rounds=len(replicated),
                 events_per_second=statistics.median(r["events_per_second"] for r in replicated),
                 plain_events_per_second=statistics.median(r["events_per_second"]
                                                           for r in rounds),
                 ratio_to_plain=round(statistics.median(ratios), 3),
                 hq_cpu_us_per_event=statistics.median(r["hq_cpu_us_per_event"]
                                                       for r in replicated))
        keys = ("acknowledged_events_per_second", "events_per_second",
                "floor_events_per_second", "acknowledged_ratio", "ratio",
                "acknowledged_transfer_ratio", "transfer_ratio",
                "projector_alone_us_per_event",
                "projector_lag_p99_seconds", "seconds",
                "startup_seconds", "node_cpu_us_per_event", "hq_cpu_us_per_event",
                "hq_peak_memory_mib", "check_us_per_event", "check_share_of_hq_cpu")
        emit(part="backlog_median", rounds=len(rounds),
             **{k: round(statistics.median(r[k] for r in rounds), 3) for k in keys})
        if args.thin_events:
            from scripts import bench_sync_thin  # it builds on this module's helpers
            bench_sync_thin.thin_link(tmp / "thin", args.thin_events, args.thin_kb,
                                      args.rounds)
        if args.nodes:
            reconnect(tmp / "reconnect", args.nodes, args.per_node)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
