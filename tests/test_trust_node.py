"""The other direction and HQ's staff side of trust: a node takes from HQ only what
concerns it (whatever an HQ, or whoever speaks as one, sends), a node cannot take HQ's
steps itself, and only an HQ admin revokes a node, from the shelter's page."""

from __future__ import annotations

import copy
import re

import pytest
from ulid import ULID

from shelter.app import create_app
from shelter.core import meta
from shelter.core.authority import Refused
from shelter.core.node import NodeContext
from shelter.domain import accounts, households, presence
from shelter.domain.settings import configure_shelter, get_settings
from sync import enrollment, protocol
from sync.apply import apply_batch
from sync.pull import apply_pulled

from .conftest import VALID_HOUSEHOLD
from .test_hq import signed_in

HERE, ELSEWHERE = "E2710000006666", "E2710000006667"
HQ_ID = "NHQ0000001"


def from_hq(kind: str, payload: dict, node_id: str = HQ_ID, seq: int = 1) -> dict:
    return {"event_id": str(ULID()), "node_id": node_id, "seq": seq,
            "hlc": f"{1764583200000 + seq:015d}.{0:08d}.{node_id}", "type": kind,
            "schema_version": 1, "payload": payload,
            "recorded_at": "2026-12-01T10:00:00.000+00:00"}


@pytest.fixture
def node(tmp_path):
    node = NodeContext(tmp_path / "node", shelter_id=HERE)
    with node.store.write() as db:
        meta.put(db, "pull_hq_id", HQ_ID)
    return node


def refused_reasons(node) -> list[str]:
    return [r[0] for r in node.db.execute(
        "SELECT reason FROM sync_quarantine WHERE refused = 1 ORDER BY quarantine_id")]


def test_a_node_takes_from_hq_only_what_concerns_it(node, tmp_path):
    here = households.register_household(node.store, node.identity,
                                       copy.deepcopy(VALID_HOUSEHOLD))["members"][0]
    other = NodeContext(tmp_path / "other", shelter_id=ELSEWHERE)
    stranger = households.register_household(other.store, other.identity,
                                           copy.deepcopy(VALID_HOUSEHOLD))["members"][0]
    moved = {"person_id": here["person_id"], "shelter_id": ELSEWHERE, "action": "check_in",
             "destination": "", "destination_detail": "", "actor": ""}
    events = [
        from_hq("shelter_configured", {"shelter_id": ELSEWHERE,
                                       "changes": {"status": "closed"}}, seq=1),
        from_hq("hq_message", {"shelter_id": ELSEWHERE, "text": "他所宛て"}, seq=2),
        from_hq("stock_moved", {"movement_id": str(ULID()), "shelter_id": HERE,
                                "item_id": "water", "kind": "received", "delta": 99,
                                "lot": ""}, seq=3),
        from_hq("presence_changed", {**moved, "person_id": stranger["person_id"]},
                node_id=other.node_id, seq=1),
        from_hq("hq_message", {"shelter_id": HERE, "text": "偽HQ"}, node_id="NFAKEHQ001"),
        from_hq("user_added", {"user_id": str(ULID()), "username": "x", "role": "manager",
                               "password_hash": "x"}, seq=4),
        from_hq("settings_changed", {"status": "closed"}, node_id=node.node_id, seq=900),
        # What does concern it: applied, behind all the refusals.
        from_hq("shelter_configured", {"shelter_id": HERE,
                                       "changes": {"capacity": "250"}}, seq=5),
        from_hq("hq_message", {"shelter_id": HERE, "text": "明朝給水"}, seq=6),
        from_hq("presence_changed", moved, node_id=other.node_id, seq=2),
    ]
    assert apply_pulled(node.store, events, cursor=10) == 3
    reasons = refused_reasons(node)
    assert len(reasons) == 6, reasons
    assert any("not this one" in r for r in reasons)
    assert any("not HQ's to send" in r for r in reasons)
    assert any("HQ's own id" in r for r in reasons)
    assert any("own name" in r for r in reasons)
    # A stranger's move: not this node's business, but no sign of a thief either (a node
    # restored from an old backup does not know people HQ has seen it register).
    assert [r[0] for r in node.db.execute("SELECT reason FROM sync_quarantine WHERE "
                                          "refused = 0")] == [
        "a presence change of a person this node does not know"]
    settings = get_settings(node.db)
    assert (settings["status"], settings["capacity"]) == ("open", "250")
    assert [r[0] for r in node.db.execute("SELECT text FROM hq_messages")] == ["明朝給水"]
    assert node.db.execute("SELECT coalesce(sum(on_hand), 0) FROM stock_lots "
                           "WHERE item_id = 'water'").fetchone()[0] == 0
    assert node.db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    assert node.db.execute("SELECT shelter_id FROM presence WHERE person_id = ?",
                           [here["person_id"]]).fetchone()[0] == ELSEWHERE
    assert node.db.execute("SELECT count(*) FROM presence WHERE person_id = ?",
                           [stranger["person_id"]]).fetchone()[0] == 0
    assert meta.get(node.db, "pull_cursor") == "10"  # refusals never hold the cursor back


def test_no_store_appends_what_its_side_may_not_say(node, tmp_path):
    with pytest.raises(Refused):
        configure_shelter(node.store, HERE, {"status": "closed"})  # HQ's to say
    with pytest.raises(Refused):  # another shelter's presence, from this node
        node.store.append("presence_changed", {"person_id": str(ULID()),
                                               "shelter_id": ELSEWHERE, "action": "check_in"})
    hq = NodeContext(tmp_path / "hq", role="hq")
    with pytest.raises(Refused):  # HQ registers nobody
        households.register_household(hq.store, hq.identity, copy.deepcopy(VALID_HOUSEHOLD))
    configure_shelter(hq.store, HERE, {"status": "full"})  # HQ may, for any shelter
    assert node.db.execute("SELECT count(*) FROM events WHERE type != 'user_added'"
                           ).fetchone()[0] == 0


def test_hq_steps_from_an_earlier_hq_epoch_are_taken(node):
    """An HQ restored from a backup speaks under a new id; what it said before still
    comes from HQ (its welcome lists every id it has had)."""
    with node.store.write() as db:
        meta.put(db, "hq_ids", '["NHQOLD0001", "NHQ0000001"]')
    events = [from_hq("hq_message", {"shelter_id": HERE, "text": "復元前の連絡"},
                      node_id="NHQOLD0001"),
              from_hq("hq_message", {"shelter_id": HERE, "text": "なりすまし"},
                      node_id="NSOMEONE01")]
    assert apply_pulled(node.store, events, cursor=2) == 1
    assert [r[0] for r in node.db.execute("SELECT text FROM hq_messages")] == ["復元前の連絡"]


def test_only_an_admin_revokes_a_node_from_the_shelters_page(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq")
    node = NodeContext(tmp_path / "node", shelter_id=HERE)
    member = households.register_household(node.store, node.identity,
                                         copy.deepcopy(VALID_HOUSEHOLD))["members"][0]
    presence.scan(node.store, HERE, node.card_keys(), member["code"], "check_in")
    with hq.store.write() as db:
        code = enrollment.issue_code(db, HERE, b"ca")
        secret, _ = enrollment.parse_code(code)
        enrollment.redeem(db, secret, node.node_id, HERE, hq.node_id)
    apply_batch(hq.store, node.node_id, HERE, [protocol.for_wire(r) for r in node.db.query(
        "SELECT * FROM events ORDER BY seq")])
    accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
    accounts.add_user(hq.store, "chief", "admin-pass-long-1", "admin")
    app = create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})
    path = f"/hq/shelters/{HERE}"
    revoke = f"{path}/nodes/{node.node_id}/revoke"

    operator, _ = signed_in(app)
    page = operator.get(f"{path}?lang=en").get_data(as_text=True)
    assert node.node_id in page and "Revoke (laptop lost or stolen)" not in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert operator.post(revoke, data={"csrf": csrf, "confirm": "yes"}).status_code == 403

    admin, _ = signed_in(app, "chief", "admin-pass-long-1")
    page = admin.get(f"{path}?lang=en").get_data(as_text=True)
    assert "Revoke (laptop lost or stolen)" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    unconfirmed = admin.post(f"{revoke}?lang=en", data={"csrf": csrf})
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.get_data(
        as_text=True)
    assert not enrollment.is_revoked(hq.db, node.node_id)
    done = admin.post(revoke, data={"csrf": csrf, "confirm": "yes"})
    assert done.status_code == 302
    assert enrollment.is_revoked(hq.db, node.node_id)
    assert "失効済み" in admin.get(f"{path}?lang=ja").get_data(as_text=True)
    assert hq.db.execute("SELECT actor, subject FROM audit_log WHERE action = 'revoke_node'"
                         ).fetchall() == [("chief", node.node_id)]
    unknown = admin.post(f"{path}/nodes/NNOSUCHNODE/revoke", data={"csrf": csrf,
                                                                   "confirm": "yes"})
    assert unknown.status_code == 404


def test_accounts_planted_over_sync_before_the_upgrade_are_disabled(tmp_path):
    """An HQ that applied a node's account events (as it did before this change) comes up
    with those accounts disabled and tokens revoked, and says so in its audit log."""
    import hashlib
    import json

    from shelter.core import db as dbmod

    hq = NodeContext(tmp_path / "hq", role="hq")
    accounts.add_user(hq.store, "admin", "hq-admin-pass-1", "admin")
    token = accounts.create_token(hq.store, "operator")
    conn = hq.db.conn
    planted = {"user_id": str(ULID()), "username": "thief", "role": "admin",
               "password_hash": accounts.hash_password("thief-pass-1")}
    planted_token = {"token_id": str(ULID()), "role": "admin", "label": "",
                     "token_hash": hashlib.sha256(b"sht_planted").hexdigest()}
    for seq, (kind, payload) in enumerate((("user_added", planted),
                                           ("token_created", planted_token)), start=1):
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                     [str(ULID()), "NTHIEF0001", seq, f"{1:015d}.{seq:08d}.NTHIEF0001", kind,
                      json.dumps(payload), "2026-11-30T00:00:00+00:00"])
    conn.execute("INSERT INTO users (user_id, username, role, password_hash, created_at) "
                 "VALUES (:user_id, :username, :role, :password_hash, 'x')", planted)
    conn.execute("INSERT INTO tokens (token_id, token_hash, role, label, created_at) "
                 "VALUES (:token_id, :token_hash, :role, :label, 'x')", planted_token)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm014_accounts_planted_over_sync'")
    dbmod.connect(hq.db_path).conn.close()  # the upgrade runs what it has not run
    assert dict(conn.execute("SELECT username, disabled FROM users")) == {"admin": 0,
                                                                          "thief": 1}
    assert accounts.principal_for_token(hq.db, "sht_planted", "hq") is None
    assert accounts.principal_for_token(hq.db, token, "hq") is not None
    assert {r[0] for r in conn.execute("SELECT action FROM audit_log WHERE actor = 'upgrade'")
            } == {"account_planted_over_sync", "token_planted_over_sync"}


def test_an_epoch_added_while_a_revocation_runs_is_born_revoked(tmp_path):
    """The race the red team won: hellos adding epochs while `hq revoke` ran left new
    epochs unrevoked. The epoch now takes the credential's state inside its transaction."""
    hq = NodeContext(tmp_path / "hq", role="hq")
    with hq.store.write() as db:
        secret, _ = enrollment.parse_code(enrollment.issue_code(db, HERE, b"ca"))
        credential = enrollment.redeem(db, secret, "NSTOLEN001", HERE, hq.node_id)
        assert enrollment.epoch_refusal(db, "NSTOLEN001", "NEPOCH0001", hq.node_id) is None
        enrollment.revoke(db, "NSTOLEN001")  # the revocation lands between check and add
        enrollment.add_epoch(db, "NSTOLEN001", "NEPOCH0001")
    assert enrollment.is_revoked(hq.db, "NEPOCH0001")
    assert enrollment.credential_state(hq.db, "NEPOCH0001", HERE, credential) == "revoked"
    with hq.store.write() as db:
        for n in range(enrollment.MAX_EPOCHS):
            db.execute("INSERT INTO hq_credentials (node_id, shelter_id, credential_hash, "
                       "created_at, revoked) SELECT ?, shelter_id, credential_hash, "
                       "created_at, 0 FROM hq_credentials WHERE node_id = 'NSTOLEN001'",
                       [f"NMANY{n:05d}"])
        assert "already has" in enrollment.epoch_refusal(db, "NSTOLEN001", "NONEMORE01",
                                                         hq.node_id)


def test_a_wrong_clock_keeps_what_it_cannot_order_and_loses_nothing(tmp_path):
    """A node half an hour slow (no clock battery, no network time) pulls a real move of
    its own evacuee: kept and flagged, not refused, not applied (it would outrank every
    scan here). At HQ, a visitor's check-in from a node whose clock runs 9 hours fast is
    kept and flagged the same way; the visitor's home shelter's scans stay in charge."""
    from sync.apply import HELD_REASON
    from sync.pull import HELD

    slow = NodeContext(tmp_path / "slow", shelter_id=HERE, clock_offset_seconds=-1800)
    here = households.register_household(slow.store, slow.identity,
                                       copy.deepcopy(VALID_HOUSEHOLD))["members"][0]
    other = NodeContext(tmp_path / "other", shelter_id=ELSEWHERE)
    moved = from_hq("presence_changed", {"person_id": here["person_id"],
                                         "shelter_id": ELSEWHERE, "action": "check_in",
                                         "destination": "", "destination_detail": "",
                                         "actor": ""}, node_id=other.node_id)
    import time
    moved["hlc"] = f"{int(time.time() * 1000):015d}.{0:08d}.{other.node_id}"
    unknown = from_hq("supply_dispatched", {"request_id": str(ULID()), "lines": [],
                                            "expected_arrival": ""}, seq=7)
    assert apply_pulled(slow.store, [moved, unknown], cursor=2) == 1
    assert slow.db.execute("SELECT reason FROM sync_flags").fetchall() == [(HELD,)]
    assert slow.db.execute("SELECT count(*) FROM presence_log").fetchone()[0] == 0
    assert refused_reasons(slow) == []  # a request this node does not know: no alarm
    assert slow.db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0] == 1

    hq = NodeContext(tmp_path / "hq", role="hq")
    home = NodeContext(tmp_path / "home", shelter_id=ELSEWHERE)
    visitor = households.register_household(home.store, home.identity,
                                          copy.deepcopy(VALID_HOUSEHOLD))["members"][0]
    presence.scan(home.store, ELSEWHERE, home.card_keys(), visitor["code"], "check_in")
    apply_batch(hq.store, home.node_id, ELSEWHERE, [protocol.for_wire(r) for r in home.db.query(
        "SELECT * FROM events ORDER BY seq")])
    fast = NodeContext(tmp_path / "fast", shelter_id=HERE, clock_offset_seconds=9 * 3600)
    presence.scan(fast.store, HERE, {**fast.card_keys(), **home.card_keys()},
                  visitor["code"], "check_in")
    ack = apply_batch(hq.store, fast.node_id, HERE, [protocol.for_wire(r) for r in fast.db.query(
        "SELECT * FROM events WHERE type = 'presence_changed'")])
    assert ack.applied == 1 and not ack.quarantined
    assert hq.db.execute("SELECT shelter_id FROM presence WHERE person_id = ?",
                         [visitor["person_id"]]).fetchone()[0] == ELSEWHERE
    assert [r[0] for r in hq.db.execute("SELECT reason FROM sync_flags")] == [HELD_REASON]


def test_the_desk_says_what_hq_would_not_take_and_what_it_refused(node):
    """A node whose events HQ quarantines (or refuses) must not show only 'connected'."""
    from shelter.domain.signin import start_session

    meta.commit(node.store, {"hq_url": "https://hq.invalid", "sync_state": "connected",
                             "sync_problems": "3"})
    apply_pulled(node.store, [from_hq("hq_message", {"shelter_id": ELSEWHERE, "text": "x"})],
                 cursor=1)
    accounts.add_user(node.store, "desk", "desk-pass-long-3", "volunteer")
    app = create_app(node.data_dir, test_config={"TESTING": True})
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = start_session(node.store, "desk")
    page = client.get("/desk/headcount?lang=en").get_data(as_text=True)
    assert "HQ did not take 3 changes" in page and "1 updates from HQ refused" in page
