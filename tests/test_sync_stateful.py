"""A Hypothesis state machine: three shelter nodes register people, check them in and out
(also with cards from the other shelters: moves), and move stock, while their links to HQ
go up and down; syncs arrive in random slices, some twice. After healing:

* HQ holds the union of the nodes' events, each exactly once;
* HQ's state equals a fresh replay of all those events in another order;
* each node's view of its own registrants' whereabouts agrees with HQ's.

Real SQLite files and the real apply and pull code, in one process: the network path is
covered by the live and fault tests; this explores orderings a network test cannot.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.domain import households, presence, stock, supplies, supply_requests
from sync import hq_rebuild, projector, protocol
from sync import log as hq_log
from sync.apply import apply_batch
from sync.pull import CURSOR_KEY, apply_pulled, updates_for

SHELTERS = ("E2710000000101", "E2710000000202", "E2710000000303")
NAMES = ("太郎", "花子", "次郎", "桜", "Lan")


def own_events(node: NodeContext) -> list[dict]:
    return [protocol.for_wire(r) for r in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])]


def logged(hq: NodeContext, node_id: str) -> int:
    return hq_log.logged_seq(hq_log.of(hq.data_dir), node_id)


def sync(node: NodeContext, hq: NodeContext, slice_size: int = 1000, twice: bool = False,
         project: bool = True):
    """A node's session, as HQ takes it: each batch stored in HQ's log and acknowledged,
    projected after (now, or by a later rule: HQ's figures lag its log meanwhile)."""
    events = own_events(node)
    done = logged(hq, node.node_id)
    while done < len(events):
        chunk = events[done:done + slice_size]
        for _ in range(2 if twice else 1):
            result = hq_log.ingest(hq_log.of(hq.data_dir), node.node_id, node.shelter_id,
                                   chunk, 1_800_000_000_000)
            assert not result.quarantined and result.need_from is None
        done = logged(hq, node.node_id)
    if project:
        projector.project_all(hq)
    while True:
        cursor = int(meta.get(node.db, CURSOR_KEY) or 0)
        updates, next_cursor = updates_for(hq.db, node.shelter_id, node.node_id, cursor)
        apply_pulled(node.store, updates, next_cursor)
        if next_cursor == cursor:
            break


STATE_TABLES = {
    "persons": "SELECT person_id, household_id, issuing_shelter FROM persons ORDER BY 1",
    "presence": "SELECT person_id, shelter_id, status, last_action, since_hlc FROM presence "
                "ORDER BY 1",
    "stock": "SELECT shelter_id, item_id, lot, on_hand FROM stock_lots WHERE on_hand != 0 "
             "ORDER BY 1, 2, 3",
    # (Not their status: HQ's own steps on them are not in this replay. The rebuild's is.)
    "requests": "SELECT request_id, shelter_id FROM supply_requests ORDER BY 1",
}


class Shelters(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="stateful-"))
        self.hq = NodeContext(self.root / "hq", role="hq", shelter_id="HQ")
        self.nodes = [NodeContext(self.root / f"n{i}", shelter_id=s)
                      for i, s in enumerate(SHELTERS)]
        self.up = [True, True, True]
        self.cards: list[str] = []

    def teardown(self) -> None:
        for ctx in [getattr(self, "hq", None), *getattr(self, "nodes", [])]:
            if ctx is not None:
                ctx.db.conn.close()
        hq_log.forget_connections()
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)

    @rule(i=st.integers(0, 2), name=st.sampled_from(NAMES), size=st.integers(1, 2))
    def register(self, i: int, name: str, size: int) -> None:
        node = self.nodes[i]
        members = [{"family_name": "山田", "given_name": f"{name}{k}",
                    "family_name_kana": "やまだ", "birth_date": f"19{50 + k}-01-0{1 + k}"}
                   for k in range(size)]
        result = households.register_household(node.store, node.identity, {
            "address": "大阪府", "whereabouts": "shelter", "consent": "none",
            "members": members})
        self.cards += [m["code"] for m in result["members"]]

    @precondition(lambda self: self.cards)
    @rule(i=st.integers(0, 2), pick=st.integers(0, 10**6),
          action=st.sampled_from(["check_in", "auto", "auto", "check_out"]))
    def scan(self, i: int, pick: int, action: str) -> None:
        node = self.nodes[i]
        try:
            presence.scan(node.store, node.shelter_id, node.card_keys(),
                          self.cards[pick % len(self.cards)], action, destination="home")
        except presence.ScanError:
            pass  # e.g. checking out someone never here: refused, nothing written

    @rule(i=st.integers(0, 2), item=st.sampled_from(["water", "food"]),
          kind=st.sampled_from(["received", "distributed"]), quantity=st.integers(1, 30))
    def stock(self, i: int, item: str, kind: str, quantity: int) -> None:
        node = self.nodes[i]
        try:
            stock.move(node.store, node.shelter_id,
                          {"item_id": item, "kind": kind, "quantity": quantity}, "m")
        except supplies.SupplyError:
            pass

    @rule(i=st.integers(0, 2))
    def request(self, i: int) -> None:
        node = self.nodes[i]
        supply_requests.request_supplies(node.store, node.shelter_id,
                                  {"lines": [{"item_id": "water", "quantity": 10}]}, "m")

    @rule(i=st.integers(0, 2))
    def toggle_link(self, i: int) -> None:
        self.up[i] = not self.up[i]

    @rule(i=st.integers(0, 2), slice_size=st.integers(1, 7), twice=st.booleans(),
          project=st.booleans())
    def sync_one(self, i: int, slice_size: int, twice: bool, project: bool) -> None:
        if self.up[i]:
            sync(self.nodes[i], self.hq, slice_size, twice, project)
            if project:  # HQ answers what it now sees: its step between nodes' events
                self.hq_steps_in(0, dispatch=False)

    @rule(pick=st.integers(0, 10**6), dispatch=st.booleans())
    def hq_steps_in(self, pick: int = 0, dispatch: bool = False) -> None:
        """HQ acknowledges or dispatches a request it has projected so far: its own step,
        between the nodes' events (a rebuild must replay it in its place)."""
        open_ = [r[0] for r in self.hq.db.execute(
            "SELECT request_id FROM supply_requests WHERE status IN ('requested', "
            "'acknowledged') ORDER BY request_id")]
        if not open_:
            return
        request_id = open_[pick % len(open_)]
        if dispatch:
            supply_requests.dispatch(self.hq.store, request_id,
                                     [{"item_id": "water", "quantity": 10}], "tomorrow")
        else:
            supply_requests.acknowledge(self.hq.store, request_id)

    @invariant()
    def hq_never_has_more_than_a_node_sent(self) -> None:
        for node in getattr(self, "nodes", []):
            assert logged(self.hq, node.node_id) <= len(own_events(node))

    def healed(self) -> None:
        for _ in range(2):  # twice: pulls may bring what a later push made relevant
            for node in self.nodes:
                sync(node, self.hq)
        union = {e["event_id"] for n in self.nodes for e in own_events(n)
                 if e["type"] != protocol.STUB_TYPE}
        at_hq = [r[0] for r in self.hq.db.execute(
            "SELECT event_id FROM events WHERE node_id != ?", [self.hq.node_id])]
        assert sorted(at_hq) == sorted(union)
        # Rebuilt from the log (HQ's own steps in their places), HQ's read models are
        # what they were, table by table.
        before = read_models(self.hq)
        judged = {t: self.hq.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                  for t in hq_rebuild.JUDGED}
        figures = hq_rebuild.rebuild(self.hq)
        assert figures["log_rows"] == hq_log.head(hq_log.of(self.hq.data_dir))
        after = read_models(self.hq)
        for table in hq_rebuild.REBUILT:
            assert after[table] == before[table], table
        for table, rows in judged.items():  # the same entries, kept as first written
            assert self.hq.db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() == rows
        # A fresh replay, nodes in reverse order, gives the same state.
        replay = NodeContext(self.root / "replay", role="hq", shelter_id="HQ2")
        for node in reversed(self.nodes):
            apply_batch(replay.store, node.node_id, node.shelter_id, own_events(node))
        for name, sql in STATE_TABLES.items():
            assert list(self.hq.db.execute(sql)) == list(replay.db.execute(sql)), name
        replay.db.conn.close()
        # Each node agrees with HQ on where its own registrants are.
        for node in self.nodes:
            mine = "SELECT person_id FROM persons WHERE issuing_shelter = ?"
            sql = ("SELECT person_id, shelter_id, status FROM presence WHERE person_id IN "
                   f"({mine}) ORDER BY 1")
            assert list(node.db.execute(sql, [node.shelter_id])) == \
                list(self.hq.db.execute(sql, [node.shelter_id]))


# Columns that say when a row was written, not what it says.
WRITTEN_AT = {"at", "quarantine_id", "conflict_id", "last_batch_at", "last_seen_at"}


def read_models(hq: NodeContext) -> dict[str, list[tuple]]:
    found = {}
    for table in hq_rebuild.REBUILT:
        columns = [r[1] for r in hq.db.execute(f"PRAGMA table_info({table})")
                   if r[1] not in WRITTEN_AT]
        found[table] = sorted(hq.db.execute(f"SELECT {', '.join(columns)} FROM {table}"),
                              key=repr)
    return found


class HealedShelters(Shelters):
    def teardown(self) -> None:
        try:
            if hasattr(self, "nodes"):
                self.healed()
        finally:
            super().teardown()


HealedShelters.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=list(HealthCheck))
test_three_shelters_converge_after_any_partitions = HealedShelters.TestCase
