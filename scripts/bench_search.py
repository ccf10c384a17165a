#!/usr/bin/env python3
"""The desk's search by name, as JSON lines: p50/p95 of ``roster.find`` (accents, width,
case and kana kind folded: "nguyen" finds Nguyễn) on a node's real store of N people, per
query, against the baseline in the same run and on the same store: the query the desk ran
before folding (the stored keys compared as they are, no function per row), which reads the
same rows. The desk searches on every keystroke, so a search is read against a keystroke's
budget (about 100 ms before typing feels slow).

    .venv/bin/python scripts/bench_search.py [--people 1000 4000] [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shelter.core.node import NodeContext  # noqa: E402
from shelter.domain import roster  # noqa: E402
from shelter.domain.households import register_household  # noqa: E402
from shelter.domain.text import kana_key, name_key  # noqa: E402

FAMILIES = [("山田", "やまだ"), ("佐藤", "さとう"), ("Nguyễn", "グエン"), ("Đặng", "ダン"),
            ("김", "キム"), ("张", "チャン"), ("田中", "たなか"), ("高橋", "たかはし")]
# A first letter, no accents, kana, half-width kana, nobody.
QUERIES = ["N", "nguyen", "やま", "ﾀﾅｶ", "zzz"]


def before(db, query: str, limit: int = 30) -> list:
    """The search as it was before folding (the baseline): the same rows read."""
    nk, kk = name_key(query, ""), kana_key(query, "")
    like = lambda s: s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"  # noqa: E731
    return list(db.query(
        """SELECT p.person_id, p.family_name, p.given_name, p.family_name_kana,
                  p.given_name_kana, p.birth_date, p.household_id, p.needs,
                  pr.status, pr.shelter_id
           FROM persons p LEFT JOIN presence pr ON pr.person_id = p.person_id
           WHERE (p.name_key LIKE ? ESCAPE '\\' OR p.kana_key LIKE ? ESCAPE '\\'
                  OR lower(p.given_name) LIKE ? ESCAPE '\\')
           ORDER BY p.kana_key, p.name_key LIMIT ?""", [like(nk), like(kk), like(nk), limit]))


def fill(ctx: NodeContext, people: int) -> None:
    with ctx.store.write():
        for n in range(people):
            family, kana = FAMILIES[n % len(FAMILIES)]
            register_household(ctx.store, ctx.identity, {
                "whereabouts": "shelter", "consent": "relatives", "language": "ja",
                "members": [{"family_name": family, "given_name": f"太郎{n}",
                             "family_name_kana": kana, "birth_date":
                             f"{1930 + n % 90}-{1 + n % 12:02d}-{1 + n % 28:02d}"}]})


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    for people in args.people:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = NodeContext(Path(tmp) / "node", shelter_id="E2710000009999")
            fill(ctx, people)
            for query in QUERIES:
                new: list[float] = []
                old: list[float] = []
                for _ in range(5):  # interleaved rounds: the machine's noise falls on both
                    old += timed(lambda: before(ctx.db, query), args.repeat // 5)
                    new += timed(lambda: roster.find(ctx.db, query), args.repeat // 5)
                found = len(roster.find(ctx.db, query))
                print(json.dumps({
                    "bench": "search", "people": people, "query": query, "found": found,
                    "found_before": len(before(ctx.db, query)),
                    "p50_ms": round(statistics.median(new) * 1000, 2),
                    "p95_ms": round(p95(new) * 1000, 2),
                    "baseline_p50_ms": round(statistics.median(old) * 1000, 2),
                    "ratio_p50": round(statistics.median(new) / statistics.median(old), 2)},
                    ensure_ascii=False),
                    flush=True)
            ctx.db.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
