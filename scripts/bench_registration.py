#!/usr/bin/env python3
"""Registrations per second and p50/p99 latency with concurrent clients through the real
node server (gunicorn, as `shelter node` runs it), against a bare Flask + SQLite insert
under the same server in the same run. Prints JSON lines; the last line is the ratio.

    .venv/bin/python scripts/bench_registration.py [--clients 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import benchlib  # noqa: E402

BODY = {
    "address": "大阪市中央区大手前2丁目", "postal_code": "540-0008", "phone": "06-0000-0000",
    "whereabouts": "shelter", "consent": "relatives", "language": "ja",
    "members": [{"family_name": "山田", "given_name": "太郎", "family_name_kana": "やまだ",
                 "given_name_kana": "たろう", "birth_date": "1948-04-02", "sex": "male",
                 "needs": ["elderly"]}],
}


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
        with benchlib.node_and_baseline(data, Path(tmp)) as (node_port, base_port):
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            return benchlib.compare(
                "registration", (node_port, "/api/v1/households", headers, body_for, 201),
                base_port, args.clients, args.seconds, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
