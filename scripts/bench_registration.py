#!/usr/bin/env python3
"""Registrations per second and p50/p99 latency with concurrent clients through the real
node server (gunicorn, as `shelter node` runs it), against a bare Flask + SQLite insert
under the same server in the same run. Prints JSON lines; the last line is the ratio.

    .venv/bin/python scripts/bench_registration.py [--clients 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shelter import server  # noqa: E402

BODY = {
    "address": "大阪市中央区大手前2丁目", "postal_code": "540-0008", "phone": "06-0000-0000",
    "whereabouts": "shelter", "consent": "relatives", "language": "ja",
    "members": [{"family_name": "山田", "given_name": "太郎", "family_name_kana": "やまだ",
                 "given_name_kana": "たろう", "birth_date": "1948-04-02", "sex": "male",
                 "needs": ["elderly"]}],
}


def start(app: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    listener = server.Listener("bench", f"127.0.0.1:{port}", env)
    cmd = listener.command()
    cmd[-1] = app
    process = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT,
                               start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{app} did not start")


GIVEN = ["たろう", "はなこ", "じろう", "さくら", "けんた", "ゆい", "しょう", "みく"]


def body_for(i: int, n: int) -> bytes:
    """Different people (a shelter does not register the same man thousands of times)."""
    data = json.loads(json.dumps(BODY))
    member = data["members"][0]
    member["given_name"] = f"{GIVEN[n % len(GIVEN)]}{i}"
    suffix = "あいうえおかきくけこさしすせそたちつてと"[i % 20]
    member["given_name_kana"] = GIVEN[n % len(GIVEN)] + suffix
    member["birth_date"] = f"{1930 + n % 90}-{1 + n % 12:02d}-{1 + (n * 7 + i) % 28:02d}"
    return json.dumps(data, ensure_ascii=False).encode()


def load(port: int, path: str, headers: dict[str, str], clients: int,
         seconds: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        while time.monotonic() < stop_at:
            body = body_for(i, n)
            n += 1
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies[i].append(time.perf_counter() - t0)
            if response.status != 201:
                failures[i] += 1
                if failures[i] == 1:
                    print(json.dumps({"bench": "registration", "first_failure": response.status}),
                          file=sys.stderr)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for part in latencies for x in part)
    return {"requests": len(flat), "failures": sum(failures),
            "per_second": round(len(flat) / elapsed, 1),
            "p50_ms": round(statistics.median(flat) * 1000, 2),
            "p99_ms": round(flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "node"
        shelter = str(Path(sys.executable).parent / "shelter")
        token = subprocess.run([shelter, "token", "create", "--data", str(data), "--role",
                                "kiosk"], capture_output=True, text=True,
                               check=True).stdout.strip()
        node_port, base_port = server.free_loopback_port(), server.free_loopback_port()
        node = start("shelter.wsgi:application", server.app_env(data), node_port)
        base = start("scripts.bench_baseline_app:app",
                     {"BASELINE_DB": str(Path(tmp) / "baseline.db")}, base_port)
        try:
            results: dict[str, list[dict[str, float]]] = {"node": [], "baseline": []}
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            load(node_port, "/api/v1/households", headers, args.clients, 1.0)  # warm up
            load(base_port, "/insert", headers, args.clients, 1.0)
            for round_no in range(args.rounds):  # interleaved: both see the same noise
                for name, port, path in (("node", node_port, "/api/v1/households"),
                                         ("baseline", base_port, "/insert")):
                    figures = load(port, path, headers, args.clients, args.seconds)
                    results[name].append(figures)
                    print(json.dumps({"bench": "registration", "target": name,
                                      "round": round_no, "clients": args.clients,
                                      **figures}), flush=True)
            med = {name: {k: statistics.median(r[k] for r in rs)
                          for k in ("per_second", "p50_ms", "p99_ms")}
                   for name, rs in results.items()}
            for name in ("node", "baseline"):
                print(json.dumps({"bench": "registration", "target": name, "summary": "median",
                                  "clients": args.clients, **med[name]}), flush=True)
            print(json.dumps({
                "bench": "registration", "summary": "ratio_node_to_baseline",
                "throughput_ratio": round(med["baseline"]["per_second"]
                                          / med["node"]["per_second"], 2),
                "p50_ratio": round(med["node"]["p50_ms"] / med["baseline"]["p50_ms"], 2),
                "p99_ratio": round(med["node"]["p99_ms"] / med["baseline"]["p99_ms"], 2),
            }), flush=True)
            if any(r["failures"] for rs in results.values() for r in rs):
                print(json.dumps({"bench": "registration", "error": "some requests failed"}))
                return 1
        finally:
            for process in (node, base):
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
