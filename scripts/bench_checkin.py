#!/usr/bin/env python3
"""Desk scans per second and p50/p99 latency: 20 desk clients posting card scans to
POST /api/v1/scans on the real node server (gunicorn, as `shelter node` runs it), against
a bare Flask + SQLite insert under the same server, in the same run. JSON lines.

Two loads, each interleaved with the baseline over several rounds:
  * saturation: every desk sends its next scan the moment the last is answered; this
    gives the most scans per second the node can take (latency here is queueing);
  * paced: every desk scans on a fixed schedule (--rate per desk, default 5 a second,
    already several times what a person at a desk can do); latency counted from when
    each scan was due. The targets (p99 under 50 ms, ratio under 2) are read here.

Every scan is a real one: a signed card payload of one of 6,000 registered people,
action "auto" (check in, out, back), each person scanned again only after the 5-second
window in which a repeat counts once.

Then the standby (`shelter node --sync-standby`, each scan answered once the standby has
stored it): two copies of the same node over HTTPS, as desks reach it, one with a
`shelter standby` following it and waiting for it, one without, paced as above and
interleaved over the rounds; p50/p99 of a scan on each and their ratio (target: p99 with a
standby under 2x without).

    .venv/bin/python scripts/bench_checkin.py [--clients 20] [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import benchlib  # noqa: E402
from shelter.core import server, tls  # noqa: E402
from shelter.core.node import NodeContext  # noqa: E402
from shelter.domain.accounts import create_token  # noqa: E402
from shelter.domain.households import register_household  # noqa: E402

PEOPLE_PER_DESK = 300


def prepare(data: Path, clients: int) -> tuple[str, list[list[str]]]:
    """Register the people every desk will scan (in one transaction: set-up, not measured)."""
    ctx = NodeContext(data, shelter_id="E2710000009999")
    codes: list[list[str]] = [[] for _ in range(clients)]
    with ctx.store.write():
        for n in range(clients * PEOPLE_PER_DESK):
            result = register_household(ctx.store, ctx.identity, {
                "address": "大阪市中央区大手前2丁目", "whereabouts": "shelter",
                "consent": "relatives", "language": "ja",
                "members": [{"family_name": "試験", "given_name": f"{n}",
                             "family_name_kana": "しけん", "birth_date":
                             f"{1930 + n % 90}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                             "needs": ["elderly"] if n % 5 == 0 else []}]})
            codes[n % clients].append(result["members"][0]["code"])
        token = create_token(ctx.store, "volunteer", "bench")
    ctx.db.conn.close()
    return token, codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5.0, help="paced scans/s per desk")
    parser.add_argument("--no-standby", action="store_true", help="skip the standby part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "node"
        token, codes = prepare(data, args.clients)
        copies = [] if args.no_standby else [
            shutil.copytree(data, Path(tmp) / name) for name in ("alone", "with-standby")]

        turn = [0] * args.clients  # each desk walks through its people across all rounds

        def body_for(i: int, _n: int) -> bytes:
            desk = codes[i]
            turn[i] += 1
            return json.dumps({"code": desk[turn[i] % len(desk)], "action": "auto"}).encode()

        with benchlib.node_and_baseline(data, Path(tmp)) as (node_port, base_port):
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            target = (node_port, "/api/v1/scans", headers, body_for, 200)
            failed = benchlib.compare("checkin", target, base_port, args.clients,
                                      args.seconds, args.rounds)
            failed |= benchlib.compare("checkin", target, base_port, args.clients,
                                       args.seconds, args.rounds, rate=args.rate)
        conn = sqlite3.connect(data / "shelter.db")
        outcomes = dict(conn.execute(
            "SELECT substr(detail, instr(detail, ':') + 1), count(*) FROM audit_log "
            "WHERE action = 'scan' GROUP BY 1").fetchall())
        conn.close()
        print(json.dumps({"bench": "checkin", "scan_outcomes": outcomes}), flush=True)
        if copies:
            failed |= standby_comparison(Path(tmp), copies, token, codes, args)
    return failed


SHELTER = str(Path(sys.executable).parent / "shelter")


def https_node(data: Path, wait: float | None) -> tuple[subprocess.Popen[bytes], int]:
    """The node's HTTPS server on ``data`` (``wait``: --sync-standby's seconds)."""
    port = server.free_loopback_port()
    cert, key = tls.ensure_certificates(data, "bench")
    listener = server.Listener("bench", f"127.0.0.1:{port}", server.app_env(
        data, SESSION_COOKIE_SECURE=True, STANDBY_WAIT_SECONDS=wait), tls=(cert, key))
    process = subprocess.Popen(listener.command(), env={**os.environ, **listener.env},
                               cwd=benchlib.ROOT, start_new_session=True)
    try:
        server.wait_for_https(port)
    except BaseException:
        benchlib.stop(process)
        raise
    return process, port


def _following(port: int, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/standby/status.json",  # noqa: S310
                                    context=context, timeout=2) as answer:
            state = json.loads(answer.read())
        return bool(state["following"]) and state["behind"] == 0
    except OSError:
        return False


def standby_comparison(tmp: Path, copies: list[Path], token: str, codes: list[list[str]],
                       args: argparse.Namespace) -> int:
    """The same paced scans at a node without a standby and at one waiting for its own."""
    alone_dir, waiting_dir = copies
    started: list[subprocess.Popen[bytes]] = []
    try:
        alone, alone_port = https_node(alone_dir, None)
        started.append(alone)
        waiting, waiting_port = https_node(waiting_dir, 1.0)
        started.append(waiting)
        standby_port = server.free_loopback_port()
        code = subprocess.run([SHELTER, "standby-code", "--data", str(waiting_dir)],
                              capture_output=True, text=True, check=True).stdout.strip()
        follower = subprocess.Popen(
            [SHELTER, "standby", "--data", str(tmp / "standby"), "--port", str(standby_port),
             "--host", "127.0.0.1", "--primary", f"https://127.0.0.1:{waiting_port}",
             "--enroll", code], stdout=subprocess.DEVNULL, start_new_session=True)
        started.append(follower)
        context = ssl.create_default_context(cafile=str(waiting_dir / "tls" / "ca.crt"))
        deadline = time.monotonic() + 120
        while not _following(standby_port, context):  # it copies the 6,000 people first
            if time.monotonic() > deadline or follower.poll() is not None:
                raise SystemExit("the standby did not catch up")
            time.sleep(0.5)
        turn = [0] * args.clients

        def body_for(i: int, _n: int) -> bytes:
            desk = codes[i]
            turn[i] += 1
            return json.dumps({"code": desk[turn[i] % len(desk)], "action": "auto"}).encode()

        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        targets = {"without_standby": (alone_port, ssl.create_default_context(
                       cafile=str(alone_dir / "tls" / "ca.crt"))),
                   "with_standby": (waiting_port, context)}
        shape = {"clients": args.clients, "rate_per_client": args.rate, "transport": "https"}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for port, context_of in targets.values():  # warm up
            benchlib.load("standby", port, "/api/v1/scans", headers, args.clients, 1.0,
                          body_for, 200, args.rate, tls=context_of)
        for round_no in range(args.rounds):
            for name, (port, context_of) in targets.items():
                figures = benchlib.load("standby", port, "/api/v1/scans", headers,
                                        args.clients, args.seconds, body_for, 200, args.rate,
                                        tls=context_of)
                results[name].append(figures)
                print(json.dumps({"bench": "checkin_standby", "target": name,
                                  "round": round_no, **shape, **figures}), flush=True)
        med = {name: {k: statistics.median(r[k] for r in rs)
                      for k in ("per_second", "p50_ms", "p99_ms")}
               for name, rs in results.items()}
        for name, figures in med.items():
            print(json.dumps({"bench": "checkin_standby", "target": name,
                              "summary": "median", **shape, **figures}), flush=True)
        p99_ratio = med["with_standby"]["p99_ms"] / med["without_standby"]["p99_ms"]
        print(json.dumps({
            "bench": "checkin_standby", "summary": "ratio_with_to_without_standby", **shape,
            "p50_ratio": round(med["with_standby"]["p50_ms"]
                               / med["without_standby"]["p50_ms"], 2),
            "p99_ratio": round(p99_ratio, 2), "p99_target": "under 2",
            "p99_ok": p99_ratio < 2}), flush=True)
        return int(any(r["failures"] for rs in results.values() for r in rs))
    finally:
        benchlib.stop(*reversed(started))


if __name__ == "__main__":
    sys.exit(main())
