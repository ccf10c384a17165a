#!/usr/bin/env python3
"""The desk and HQ with slow clients hanging on them, as JSON lines.

A real node (`shelter node`, HTTPS) and a real HQ (`shelter hq`). Each round measures, on a
fresh connection per call (the TLS handshake included, as a tablet waking up makes it):
the desk's scan (`POST /api/v1/scans`) and headcount (`GET /api/v1/headcount`) on the node
and HQ's `GET /api/v1/summary`, first with nothing else connected ("quiet"), then with
--slow connections open on that server that stall in every way tests/slowcrowd.py knows
(nothing sent, half a ClientHello, half a request line or head, a cut body, a byte every
call, half a second request on a kept-alive connection, ...) ("crowded"). Each call waits
at most --timeout seconds; one that gets no answer by then counts as unanswered.

Per round and call: the median latency of each phase; then the medians over the rounds,
the slowest crowded call, and the ratio crowded / quiet (same run, same machine noise).

    .venv/bin/python scripts/bench_slow_clients.py [--slow 300] [--calls 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import benchlib  # noqa: E402
from shelter.core import server  # noqa: E402
from shelter.core.node import NodeContext  # noqa: E402
from shelter.domain.accounts import create_token  # noqa: E402
from shelter.domain.households import register_household  # noqa: E402
from tests.slowcrowd import SlowCrowd  # noqa: E402

SHELTER = str(Path(sys.executable).parent / "shelter")
SOURCES = [f"127.0.0.{n}" for n in range(2, 12)]  # under the cap per client address


def emit(**fields: object) -> None:
    print(json.dumps({"bench": "slow_clients", **fields}, ensure_ascii=False), flush=True)


def start(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = server.free_loopback_port()
    process = subprocess.Popen([SHELTER, *args, "--port", str(port), "--host", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, start_new_session=True)
    server.wait_for_https(port, 60)
    return process, port


def prepare_node(data: Path) -> tuple[str, str]:
    """A volunteer token and the card of one registered person."""
    ctx = NodeContext(data, shelter_id="E2710000008888")
    with ctx.store.write():
        person = register_household(ctx.store, ctx.identity, {
            "address": "大阪市中央区大手前2丁目", "whereabouts": "shelter",
            "consent": "relatives", "language": "ja",
            "members": [{"family_name": "試験", "given_name": "太郎",
                         "family_name_kana": "しけん", "birth_date": "1950-01-01"}]})
        token = create_token(ctx.store, "volunteer", "bench")
    ctx.db.conn.close()
    return token, person["members"][0]["code"]


def hq_token(data: Path) -> str:
    ctx = NodeContext(data, role="hq")
    with ctx.store.write():
        token = create_token(ctx.store, "operator", "bench")
    ctx.db.conn.close()
    return token


Call = Callable[[float], requests.Response]


def measure(call: Call, calls: int, timeout: float, crowd: SlowCrowd | None
            ) -> tuple[list[float], int]:
    """Latencies of the answered calls (seconds) and how many got no answer in time."""
    latencies: list[float] = []
    unanswered = 0
    for _ in range(calls):
        if crowd is not None:
            crowd.trickle()
        started = time.perf_counter()
        try:
            response = call(timeout)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
            latencies.append(time.perf_counter() - started)
        except requests.RequestException:
            unanswered += 1
    return latencies, unanswered


def ms(values: list[float]) -> float | None:
    return round(statistics.median(values) * 1000, 2) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=300, help="slow connections per server")
    parser.add_argument("--calls", type=int, default=20, help="calls of each kind per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        node_data, hq_data = Path(scratch) / "node", Path(scratch) / "hq"
        volunteer, code = prepare_node(node_data)
        operator = hq_token(hq_data)
        node, node_port = start("node", "--data", str(node_data))
        try:
            hq, hq_port = start("hq", "--data", str(hq_data))
        except BaseException:
            benchlib.stop(node)
            raise
        try:
            return run(args, node_data, node_port, volunteer, code, hq_data, hq_port,
                       operator)
        finally:
            benchlib.stop(node)
            benchlib.stop(hq)


def run(args: argparse.Namespace, node_data: Path, node_port: int, volunteer: str,
        code: str, hq_data: Path, hq_port: int, operator: str) -> int:
    node_ca, hq_ca = str(node_data / "tls" / "ca.crt"), str(hq_data / "tls" / "ca.crt")
    desk = {"Authorization": f"Bearer {volunteer}"}
    actions = iter(["check_in", "check_out"] * 10_000)

    def scan(timeout: float) -> requests.Response:
        return requests.post(f"https://127.0.0.1:{node_port}/api/v1/scans", headers=desk,
                             json={"code": code, "action": next(actions),
                                   "destination": "home"}, verify=node_ca, timeout=timeout)

    def headcount(timeout: float) -> requests.Response:
        return requests.get(f"https://127.0.0.1:{node_port}/api/v1/headcount", headers=desk,
                            verify=node_ca, timeout=timeout)

    def summary(timeout: float) -> requests.Response:
        return requests.get(f"https://127.0.0.1:{hq_port}/api/v1/summary", verify=hq_ca,
                            headers={"Authorization": f"Bearer {operator}"}, timeout=timeout)

    targets: list[tuple[str, int, list[tuple[str, Call]]]] = [
        ("node", node_port, [("scan", scan), ("headcount", headcount)]),
        ("hq", hq_port, [("summary", summary)])]
    medians: dict[tuple[str, str], list[float]] = {}
    slowest: dict[tuple[str, str], float] = {}
    unanswered_total = 0
    for name, _, calls in targets:  # warm up
        for _call_name, call in calls:
            measure(call, 3, args.timeout, None)
    for round_no in range(args.rounds):
        for name, port, calls in targets:
            for phase in ("quiet", "crowded"):
                crowd = None
                if phase == "crowded":
                    crowd = SlowCrowd(port, tls=True, sources=SOURCES)
                    opened = time.monotonic()
                    crowd.open(args.slow)
                    emit(round=round_no, server=name, crowd=len(crowd), stages=crowd.stages(),
                         open_s=round(time.monotonic() - opened, 2))
                try:
                    for call_name, call in calls:
                        latencies, unanswered = measure(call, args.calls, args.timeout, crowd)
                        unanswered_total += unanswered
                        medians.setdefault((call_name, phase), [])
                        if latencies:
                            medians[(call_name, phase)].append(statistics.median(latencies))
                            slowest[(call_name, phase)] = max(
                                max(latencies), slowest.get((call_name, phase), 0.0))
                        emit(round=round_no, call=call_name, phase=phase, slow=len(crowd or ()),
                             answered=len(latencies), unanswered=unanswered,
                             p50_ms=ms(latencies),
                             max_ms=round(max(latencies) * 1000, 2) if latencies else None)
                    if crowd is not None:
                        emit(round=round_no, server=name, still_open=crowd.still_open())
                finally:
                    if crowd is not None:
                        crowd.close()
    for call_name in ("scan", "headcount", "summary"):
        quiet, crowded = medians.get((call_name, "quiet"), []), \
            medians.get((call_name, "crowded"), [])
        fields: dict[str, object] = {"summary": "median", "call": call_name, "slow": args.slow,
                                     "quiet_p50_ms": ms(quiet), "crowded_p50_ms": ms(crowded),
                                     "crowded_max_ms": ms([slowest[(call_name, "crowded")]])
                                     if (call_name, "crowded") in slowest else None}
        if quiet and crowded:
            fields["ratio_crowded_to_quiet"] = round(
                statistics.median(crowded) / statistics.median(quiet), 2)
        emit(**fields)
    if unanswered_total:
        emit(error=f"{unanswered_total} calls got no answer within {args.timeout:g} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
