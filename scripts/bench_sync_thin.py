#!/usr/bin/env python3
"""Sync through a thin link, as JSON lines (part (d) of scripts/bench_sync.py, which runs it;
it also runs alone):

the same backlog (--thin-events events, as a desk makes them) pushed to a real HQ over a
link that cuts every connection after --thin-kb KB (both directions together:
tests/faultproxy.py, a mobile link at the edge of coverage), and over a plain link through
the same proxy passing everything; interleaved --rounds times, sync clients in this process
(the node's own SyncClient, its back-off and batch sizes as they are). Figures: events per
second delivered to HQ on each link, connections used, and the medians with the ratio of
thin to plain.

    .venv/bin/python scripts/bench_sync_thin.py [--thin-events 2000] [--thin-kb 8]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import benchlib  # noqa: E402
from scripts.bench_sync import emit, enroll, fill, hq_acked, start_hq  # noqa: E402
from shelter.core import meta  # noqa: E402
from shelter.core.node import NodeContext  # noqa: E402
from sync import client  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

DEADLINE = 900.0  # seconds for one backlog on one link


def deliver(tmp: Path, hq_data: Path, hq_port: int, shelter_id: str, events: int,
            cut_after: int | None) -> dict[str, float]:
    """One node's backlog to HQ through the proxy (cutting each connection after
    ``cut_after`` bytes, or never): seconds from the client's start to HQ's last ack."""
    ctx = NodeContext(tmp / shelter_id, shelter_id=shelter_id)
    fill(ctx, events)
    enroll(hq_data, hq_port, ctx)
    total = int(ctx.db.execute("SELECT max(seq) FROM events WHERE node_id = ?",
                               [ctx.node_id]).fetchone()[0])
    proxy = FaultProxy(hq_port, thin=(cut_after, cut_after) if cut_after else None).start()
    meta.commit(ctx.store, {"hq_url": f"https://127.0.0.1:{proxy.port}"})
    stop = threading.Event()
    started = time.perf_counter()
    client.SyncClient(ctx.data_dir, stop).start()
    try:
        deadline = time.monotonic() + DEADLINE
        while hq_acked(hq_data / "shelter.db", ctx.node_id) < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"the backlog did not reach HQ within {DEADLINE:.0f} s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        proxy.stop()
        ctx.db.conn.close()
    connections = len(proxy.log) if cut_after else 1
    return {"events": total, "seconds": round(elapsed, 2),
            "events_per_second": round(total / elapsed, 2), "connections": connections,
            "events_per_connection": round(total / connections, 1)}


def thin_link(tmp: Path, events: int, kb: float, rounds: int) -> dict[str, float]:
    """(d): plain and thin, interleaved ``rounds`` times, against one real HQ."""
    hq, hq_data, hq_port = start_hq(tmp / "hq")
    results: dict[str, list[dict[str, float]]] = {"plain": [], "thin": []}
    try:
        for n in range(rounds):
            for kind, cut_after in (("plain", None), ("thin", int(kb * 1000))):
                shelter_id = f"E2710000{3 if cut_after else 2}{n:05d}"
                figures = deliver(tmp, hq_data, hq_port, shelter_id, events, cut_after)
                results[kind].append(figures)
                emit(part="thin_link", link=kind, round=n,
                     bytes_per_connection=cut_after or "all", **figures)
    finally:
        benchlib.stop(hq)
    med = {kind: statistics.median(r["events_per_second"] for r in rs)
           for kind, rs in results.items()}
    summary = {"rounds": rounds, "events": results["thin"][0]["events"],
               "kb_per_connection": kb,
               "thin_events_per_second": med["thin"], "plain_events_per_second": med["plain"],
               "thin_connections": statistics.median(r["connections"]
                                                     for r in results["thin"]),
               "thin_events_per_connection": statistics.median(
                   r["events_per_connection"] for r in results["thin"]),
               "thin_to_plain": round(med["thin"] / med["plain"], 4)}
    emit(part="thin_link_median", **summary)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--thin-events", type=int, default=2000)
    parser.add_argument("--thin-kb", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        thin_link(Path(tmp_name), args.thin_events, args.thin_kb, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
