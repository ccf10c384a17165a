"""Courier sync against a real HQ and a real node: a shelter with no link sends its events
to HQ on a USB stick and gets HQ's updates back; what may not pass (a second import, a
changed byte, a revoked or foreign signer) is refused with its reason and nothing applied;
and when the link returns, sync goes on where the bundles left off, nothing doubled."""

from __future__ import annotations

import copy
import json
import re
import secrets
import zlib
from types import SimpleNamespace

import pytest

from shelter.core import meta
from shelter.core.events import utc_now_iso
from shelter.core.node import NodeContext
from shelter.core.server import free_loopback_port
from shelter.domain.settings import send_message
from sync import client, protocol
from sync.bundle import BundleRefused, credential_hash, seal, write_new
from sync.bundle_node import import_reply

from .conftest import VALID_HOUSEHOLD, api, enrolled_node, run_cli, start_node, wait_until
from .test_sync_faults import read

SHELTER_A = "E2710000007001"
SHELTER_B = "E2710000007002"
SHELTER_C = "E2710000007003"
MESSAGE = "物資は明日の朝に届きます"


def fact(data, key):
    rows = read(data / "shelter.db", "SELECT value FROM meta WHERE key = ?", (key,))
    return rows[0][0] if rows else None


def hq_events(hq, node_id):
    return read(hq.data / "shelter.db", "SELECT count(*) FROM events WHERE node_id = ?",
                (node_id,))[0][0]


def shared_events(data, node_id, after=0):
    """The node's events that HQ stores (local-only ones travel as stubs)."""
    return read(data / "shelter.db", "SELECT count(*) FROM events WHERE node_id = ? AND type "
                "NOT IN ('user_added', 'user_disabled', 'user_enabled', 'token_created') "
                "AND seq > ?", (node_id, after))[0][0]


def register(node, tokens, n, tag):
    kiosk, volunteer = tokens
    for i in range(n):
        body = copy.deepcopy(VALID_HOUSEHOLD)
        body["members"][0]["given_name"] = f"{tag}{i}"
        response = api(node, "POST", "/api/v1/households", kiosk, json=body)
        assert response.status_code == 201
        assert api(node, "POST", "/api/v1/scans", volunteer, json={
            "code": response.json()["members"][0]["code"], "action": "check_in"}
        ).status_code == 200


def hq_import(hq, path, *extra):
    return run_cli("hq", "bundle", "import", "--data", str(hq.data), str(path), *extra,
                   check=False)


def counts(output):
    return {k: int(v) for k, v in re.findall(r"(applied|duplicates|quarantined|refused|"
                                              r"conflicts) (\d+)", output)}


@pytest.fixture(scope="module")
def shelter_a(hq, tmp_path_factory):
    """Shelter A: enrolled and synced once, then running with its link gone."""
    data = tmp_path_factory.mktemp("a")
    node = enrolled_node(hq, data, SHELTER_A, "--sync-max-backoff", "2")
    wait_until(lambda: fact(data, "sync_state") == "connected"
               and json.loads(fact(data, "sync_acked")).get(fact(data, "node_id"))
               == int(fact(data, "seq_last") or 0), what="HQ to hold the node's first events")
    node.stop()
    node_id = fact(data, "node_id")
    synced = hq_events(hq, node_id)  # what the link carried before it went
    gone = f"https://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    box = SimpleNamespace(node=start_node(data, "--hq", gone, "--sync-max-backoff", "2"),
                          data=data, node_id=node_id, synced=synced)
    box.tokens = (box.node.token("kiosk"), box.node.token("volunteer"))
    yield box
    box.node.stop()


@pytest.fixture(scope="module")
def courier(hq, shelter_a, tmp_path_factory):
    """Three households registered offline; HQ writes to the shelter meanwhile; the bundle
    goes to HQ, and HQ's reply comes back."""
    register(shelter_a.node, shelter_a.tokens, 3, "便")
    at_hq = NodeContext(hq.data, role="hq")
    send_message(at_hq.store, SHELTER_A, MESSAGE)
    files = tmp_path_factory.mktemp("stick")
    bundle, reply = files / "a.bundle", files / "a.reply"
    exported = run_cli("bundle", "export", "--data", str(shelter_a.data), "--to", str(bundle))
    imported = hq_import(hq, bundle, "--reply", str(reply))
    replied = run_cli("bundle", "import", "--data", str(shelter_a.data), str(reply),
                      check=False)
    return SimpleNamespace(bundle=bundle, reply=reply, exported=exported, imported=imported,
                           replied=replied, files=files)


def test_a_round_trip_by_courier(hq, hq_token, shelter_a, courier):
    assert "wrote bundle" in courier.exported.stdout
    data = courier.bundle.read_bytes()
    assert courier.bundle.stat().st_mode & 0o777 == 0o600
    assert data.startswith(b"SHELTER-BUNDLE 1\n")
    assert "山田".encode() not in data and b"5400008" not in data  # the body is encrypted
    assert courier.imported.returncode == 0, courier.imported.stderr
    done = counts(courier.imported.stdout)
    expected = shared_events(shelter_a.data, shelter_a.node_id)
    assert done == {"applied": expected - shelter_a.synced, "duplicates": 0, "quarantined": 0,
                    "refused": 0, "conflicts": 0}, courier.imported.stdout
    assert expected - shelter_a.synced >= 6  # three registrations and their check-ins
    assert hq_events(hq, shelter_a.node_id) == expected

    def shelter_row():
        rows = hq.get("/api/v1/shelters", hq_token).json()["shelters"]
        row = next((r for r in rows if r["shelter_id"] == SHELTER_A), None)
        return row if row and row["registered"] == 3 else None

    row = wait_until(shelter_row, what="HQ's numbers for shelter A")
    assert row["present"] == 3
    page = hq.get("/hq/sync", hq_token)
    assert page.status_code == 200 and shelter_a.node_id in page.text.split('id="bundles"')[1]

    # The reply: HQ's message comes down, and the node learns what HQ holds.
    assert courier.replied.returncode == 0, courier.replied.stderr
    assert counts(courier.replied.stdout)["applied"] == 1
    assert read(shelter_a.data / "shelter.db", "SELECT count(*) FROM hq_messages WHERE "
                "text = ?", (MESSAGE,)) == [(1,)]
    acked = json.loads(fact(shelter_a.data, "sync_acked"))
    assert acked[shelter_a.node_id] == int(fact(shelter_a.data, "seq_last"))
    status = api(shelter_a.node, "GET", "/api/v1/sync-status", shelter_a.tokens[1]).json()
    assert status["waiting"] == 0


def test_a_second_import_is_refused_and_applies_nothing(hq, shelter_a, courier):
    before = hq_events(hq, shelter_a.node_id)
    again = hq_import(hq, courier.bundle)
    assert again.returncode == 1 and "already imported at" in again.stderr
    assert "applied" not in again.stdout
    assert hq_events(hq, shelter_a.node_id) == before
    assert read(hq.data / "shelter.db", "SELECT count(*) FROM sync_bundles WHERE node_id = ?",
                (shelter_a.node_id,)) == [(1,)]
    reply_again = run_cli("bundle", "import", "--data", str(shelter_a.data),
                          str(courier.reply), check=False)
    assert reply_again.returncode == 1 and "already imported at" in reply_again.stderr
    # HQ's reply is not a bundle, and a node's bundle is not a reply.
    crossed = hq_import(hq, courier.reply)
    assert crossed.returncode == 1 and "imported on the node" in crossed.stderr
    crossed = run_cli("bundle", "import", "--data", str(shelter_a.data), str(courier.bundle),
                      check=False)
    assert crossed.returncode == 1 and "not HQ's reply" in crossed.stderr


def test_a_changed_byte_or_field_is_refused(hq, hq_token, shelter_a, courier):
    before = hq_events(hq, shelter_a.node_id)
    original = courier.bundle.read_bytes()
    flipped = bytearray(original)
    flipped[-7] ^= 0x01  # one bit of the body
    header = original.split(b"\n")[1]
    changed = original.replace(header, header.replace(b'"events":', b'"events":1', 1))
    assert changed != original
    cases = {"flipped": (bytes(flipped), "signature does not verify"),
             "header": (changed, "signature does not verify"),
             "cut": (original[:-100], "cut short"),
             "other": (b"PK\x03\x04 a zip file, say", "not a shelter courier bundle")}
    for name, (content, reason) in cases.items():
        path = courier.files / f"{name}.bundle"
        path.write_bytes(content)
        refused = hq_import(hq, path)
        assert refused.returncode == 1 and reason in refused.stderr, (name, refused.stderr)
    assert hq_events(hq, shelter_a.node_id) == before
    page = hq.get("/hq/sync", hq_token).text
    assert 'data-code="bad_signature"' in page and 'data-code="not_a_bundle"' in page


def enroll_here(hq, data, shelter_id):
    """A node enrolled with the real HQ, in this process (no server needed for it)."""
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", shelter_id
                   ).stdout.strip()
    ctx = NodeContext(data, shelter_id=shelter_id)
    client.enroll(ctx, hq.url, code)
    ctx.store.append("settings_changed", {"capacity": "40"})
    return ctx


def forge(ctx, path, sections, **changes):
    """A bundle signed with ``ctx``'s own credential, saying what its holder likes."""
    header = {"kind": "bundle", "bundle_id": secrets.token_hex(16), "node_id": ctx.node_id,
              "credential_node": ctx.node_id, "shelter_id": ctx.shelter_id,
              "hq_id": meta.get(ctx.db, "hq_id"), "created_at": utc_now_iso(),
              "events": sum(len(e) for _, e in sections),
              "origins": {o: len(e) for o, e in sections}, "pull_cursor": 0,
              "pull_hq_id": None, **changes}
    body = json.dumps({"type": "courier_bundle", "origins": [
        {"origin": o, "events": e} for o, e in sections]}).encode()
    write_new(path, seal(header, zlib.compress(body), credential_hash(
        meta.get(ctx.db, "hq_credential"))))
    return path


def wire(data, node_id):
    rows = NodeContext(data).db.query("SELECT * FROM events WHERE node_id = ? ORDER BY seq",
                                      [node_id])
    return [protocol.for_wire(r) for r in rows]


def test_a_signer_may_send_only_its_own_shelter_and_ids(hq, shelter_a, courier, tmp_path):
    b = enroll_here(hq, tmp_path / "b", SHELTER_B)
    own = wire(b.data_dir, b.node_id)
    a_events = [e for e in wire(shelter_a.data, shelter_a.node_id) if e["type"] != "local"]
    before = hq_events(hq, shelter_a.node_id)
    refusals = {
        "another shelter": (forge(b, tmp_path / "1", [(b.node_id, own)],
                                  shelter_id=SHELTER_A), "enrolled for shelter E2710000007002"),
        "another's origin": (forge(b, tmp_path / "2", [(shelter_a.node_id, a_events)]),
                             "is not one of node"),
        "another's id": (forge(b, tmp_path / "3", [(shelter_a.node_id, a_events)],
                               node_id=shelter_a.node_id), "belongs to another credential"),
        "unknown node": (forge(b, tmp_path / "4", [], node_id="NZZZZZZZZZ",
                               credential_node="NZZZZZZZZZ"), "no enrolled node NZZZZZZZZZ"),
    }
    for name, (path, reason) in refusals.items():
        refused = hq_import(hq, path)
        assert refused.returncode == 1 and reason in refused.stderr, (name, refused.stderr)
    assert hq_events(hq, shelter_a.node_id) == before
    assert hq_events(hq, b.node_id) == 0
    with pytest.raises(BundleRefused, match="this reply is for node"):  # A's, not B's
        import_reply(b, courier.reply)
    # Its own id, but an event only HQ may say: that one is refused, the rest applied.
    forged = {**own[0], "event_id": "01J" + "Z" * 23, "seq": 2, "type": "hq_message",
              "payload": {"shelter_id": SHELTER_B, "text": "x"}}
    mixed = hq_import(hq, forge(b, tmp_path / "5", [(b.node_id, [own[0], forged])]))
    assert mixed.returncode == 0, mixed.stderr
    assert counts(mixed.stdout) == {"applied": 1, "duplicates": 0, "quarantined": 0,
                                    "refused": 1, "conflicts": 0}, mixed.stdout
    assert read(hq.data / "shelter.db", "SELECT count(*) FROM sync_quarantine WHERE node_id "
                "= ? AND refused = 1", (b.node_id,)) == [(1,)]


def test_a_bundle_from_a_revoked_node_is_refused(hq, tmp_path):
    c = enroll_here(hq, tmp_path / "c", SHELTER_C)
    bundle = tmp_path / "c.bundle"
    run_cli("bundle", "export", "--data", str(c.data_dir), "--to", str(bundle))
    # HQ holds the node's card key: given with its enrollment, so the export (which, as a
    # session after its welcome, publishes a key HQ has not had) had none to publish.
    assert read(hq.data / "shelter.db", "SELECT public_key FROM card_keys WHERE node_id = ?",
                (c.node_id,)) == [(c.public_key,)]
    assert read(c.data_dir / "shelter.db", "SELECT count(*) FROM events WHERE type = "
                "'card_key_published'") == [(0,)]
    again = run_cli("bundle", "export", "--data", str(c.data_dir), "--to", str(bundle),
                    check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    run_cli("hq", "revoke", "--data", str(hq.data), "--node", c.node_id)
    refused = hq_import(hq, bundle)
    assert refused.returncode == 1 and "revoked" in refused.stderr
    assert hq_events(hq, c.node_id) == 0
    stranger = tmp_path / "stranger"
    NodeContext(stranger).db.conn.close()
    alone = run_cli("bundle", "export", "--data", str(stranger), "--to",
                    str(tmp_path / "s.bundle"), check=False)
    assert alone.returncode == 1 and "not enrolled" in alone.stderr


def test_when_the_link_returns_sync_goes_on_where_the_bundles_left_off(hq, shelter_a,
                                                                       courier):
    register(shelter_a.node, shelter_a.tokens, 2, "二便")
    second = courier.files / "a2.bundle"
    run_cli("bundle", "export", "--data", str(shelter_a.data), "--to", str(second))
    imported = hq_import(hq, second)  # no reply comes back this time
    assert imported.returncode == 0 and counts(imported.stdout)["applied"] >= 4
    seq_last = int(fact(shelter_a.data, "seq_last"))
    assert json.loads(fact(shelter_a.data, "sync_acked"))[shelter_a.node_id] < seq_last
    last_batch = read(hq.data / "shelter.db", "SELECT last_batch_at FROM sync_origins "
                      "WHERE node_id = ?", (shelter_a.node_id,))
    shelter_a.node.stop()
    shelter_a.node = start_node(shelter_a.data, "--hq", hq.url, "--sync-max-backoff", "2")
    # HQ's welcome tells the node that HQ holds everything; nothing is sent again.
    wait_until(lambda: json.loads(fact(shelter_a.data, "sync_acked"))[shelter_a.node_id]
               == seq_last and fact(shelter_a.data, "sync_state") == "connected",
               what=f"the welcome's acknowledgement {seq_last} "
               f"{fact(shelter_a.data, 'sync_acked')} {fact(shelter_a.data, 'sync_state')}")
    assert read(hq.data / "shelter.db", "SELECT last_batch_at FROM sync_origins WHERE "
                "node_id = ?", (shelter_a.node_id,)) == last_batch
    register(shelter_a.node, shelter_a.tokens, 1, "回復")
    wait_until(lambda: hq_events(hq, shelter_a.node_id)
               == shared_events(shelter_a.data, shelter_a.node_id), what="HQ to catch up")
    assert read(hq.data / "shelter.db", "SELECT (SELECT count(*) FROM sync_conflicts WHERE "
                "node_id = ?1) + (SELECT count(*) FROM sync_quarantine WHERE node_id = ?1)",
                (shelter_a.node_id,)) == [(0,)]
    assert read(shelter_a.data / "shelter.db", "SELECT count(*) FROM hq_messages WHERE "
                "text = ?", (MESSAGE,)) == [(1,)]
