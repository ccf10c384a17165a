"""What the benchmarks share: starting an app under the node's own gunicorn configuration,
driving it with concurrent keep-alive clients, and printing medians and the ratio to the
bare Flask + SQLite baseline (scripts/bench_baseline_app.py) measured in the same run."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import shelter.hq  # noqa: F401, E402  (the domain's projections, HQ's store hooks)
from shelter.core import server  # noqa: E402

BodyFor = Callable[[int, int], bytes]  # (client number, request number) -> body


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


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """Stop each server and what it started: TERM, then KILL after 20 s."""
    for process in processes:
        if process.poll() is not None:
            continue
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def node_and_baseline(data: Path, scratch: Path) -> Iterator[tuple[int, int]]:
    """The node on ``data`` and the bare baseline app, each under the node's own gunicorn
    configuration on a free port; both stopped afterwards. Yields (node port, baseline)."""
    node_port, base_port = server.free_loopback_port(), server.free_loopback_port()
    node = start("shelter.wsgi:application", server.app_env(data), node_port)
    try:
        base = start("scripts.bench_baseline_app:app",
                     {"BASELINE_DB": str(scratch / "baseline.db")}, base_port)
    except BaseException:
        stop(node)
        raise
    try:
        yield node_port, base_port
    finally:
        stop(node, base)


def load(bench: str, port: int, path: str, headers: dict[str, str], clients: int,
         seconds: float, body_for: BodyFor | None, ok: int, rate: float = 0.0,
         method: str = "POST", tls: Any = None) -> dict[str, float]:
    """Each client sends its next request as soon as the last is answered; or, with
    ``rate``, on a fixed schedule of that many requests per second per client. Latency is
    then counted from when the request was due, so a slow answer that delays the next
    request is not hidden (no coordinated omission)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls) \
            if tls is not None else http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        interval = 1.0 / rate if rate else 0.0
        due = time.perf_counter() + interval * i / clients  # desks out of step
        while time.monotonic() < stop_at:
            body = body_for(i, n) if body_for else None
            n += 1
            if interval:
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                t0 = due
                due += interval
            else:
                t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies[i].append(time.perf_counter() - t0)
            if response.status != ok:
                failures[i] += 1
                if failures[i] == 1:
                    print(json.dumps({"bench": bench, "first_failure": response.status}),
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
            "p95_ms": round(flat[min(len(flat) - 1, int(len(flat) * 0.95))] * 1000, 2),
            "p99_ms": round(flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000, 2)}


def compare(bench: str, node: tuple[int, str, dict[str, str], BodyFor, int],
            baseline_port: int, clients: int, seconds: float, rounds: int,
            rate: float = 0.0) -> int:
    """Interleaved rounds (both targets see the same machine noise), then medians and the
    node-to-baseline ratios. Returns 1 if any request failed."""
    port, path, headers, body_for, ok = node
    targets = (("node", port, path, headers, body_for, ok),
               ("baseline", baseline_port, "/insert", {"Content-Type": "application/json"},
                body_for, 201))
    results: dict[str, list[dict[str, float]]] = {"node": [], "baseline": []}
    for name, *target in targets:  # warm up
        load(bench, target[0], target[1], target[2], clients, 1.0, target[3], target[4], rate)
    load_shape = {"clients": clients, "rate_per_client": rate or "as fast as answered"}
    for round_no in range(rounds):
        for name, *target in targets:
            figures = load(bench, target[0], target[1], target[2], clients, seconds,
                           target[3], target[4], rate)
            results[name].append(figures)
            print(json.dumps({"bench": bench, "target": name, "round": round_no,
                              **load_shape, **figures}), flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs)
                  for k in ("per_second", "p50_ms", "p99_ms")}
           for name, rs in results.items()}
    for name in ("node", "baseline"):
        print(json.dumps({"bench": bench, "target": name, "summary": "median",
                          **load_shape, **med[name]}), flush=True)
    print(json.dumps({
        "bench": bench, "summary": "ratio_node_to_baseline", **load_shape,
        "throughput_ratio": round(med["baseline"]["per_second"] / med["node"]["per_second"], 2),
        "p50_ratio": round(med["node"]["p50_ms"] / med["baseline"]["p50_ms"], 2),
        "p99_ratio": round(med["node"]["p99_ms"] / med["baseline"]["p99_ms"], 2),
    }), flush=True)
    if any(r["failures"] for rs in results.values() for r in rs):
        print(json.dumps({"bench": bench, "error": "some requests failed"}))
        return 1
    return 0
