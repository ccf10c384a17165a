"""A thief with one shelter's data directory (its credential, its card key, its database),
and a careless operator, against courier bundles, replacement from HQ and scheduled
backups, between real stores: what one shelter's key signs never changes or shows another
shelter's, odd files and odd values are refused with a reason, and a node's rotation keeps
another node's copies."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
import zlib
from pathlib import Path

import pytest

from shelter.commands.replace import report
from shelter.core import backups, meta
from shelter.core.events import utc_now_iso
from shelter.core.node import NodeContext
from shelter.domain import households
from shelter.domain.settings import change_settings
from sync import bundle, enrollment, rebuild
from sync.apply import apply_batch
from sync.bundle import BundleRefused, credential_hash, seal, write_new
from sync.bundle_hq import import_bundle, write_reply
from sync.bundle_node import export_bundle

from .conftest import run_cli
from .test_replace import enroll_at, household, push, rebuild_in_process, wire

HERE, THERE = "E2710000009701", "E2710000009702"
HQ_SHELTER = "HQ-OSAKA"


def enrolled(hq: NodeContext, data: Path, shelter_id: str) -> NodeContext:
    node = NodeContext(data, shelter_id=shelter_id)
    credential = enroll_at(hq, node.node_id, shelter_id)
    meta.commit(node.store, {"hq_credential": credential, "hq_id": hq.node_id,
                             "hq_credential_node": node.node_id})
    households.register_household(node.store, node.identity, household("太郎"))
    return node


def forge(ctx: NodeContext, path: Path, sections: list, body: bytes | None = None,
          **changes) -> Path:
    """A bundle signed with ``ctx``'s own credential (the thief has it), saying anything."""
    header = {"kind": "bundle", "bundle_id": secrets.token_hex(16), "node_id": ctx.node_id,
              "credential_node": ctx.node_id, "shelter_id": ctx.shelter_id,
              "hq_id": meta.get(ctx.db, "hq_id"), "created_at": utc_now_iso(),
              "events": sum(len(e) for _, e in sections),
              "origins": {o: len(e) for o, e in sections}, "pull_cursor": 0, **changes}
    if body is None:
        body = json.dumps({"type": "courier_bundle", "origins": [
            {"origin": o, "events": e} for o, e in sections]}).encode()
    write_new(path, seal(header, zlib.compress(body), credential_hash(
        meta.get(ctx.db, "hq_credential"))))
    return path


def header_of(path: Path) -> dict:
    return json.loads(path.read_bytes().split(b"\n")[1])  # plain text: anyone can read it


@pytest.fixture
def two(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id=HQ_SHELTER)
    return hq, enrolled(hq, tmp_path / "a", HERE), enrolled(hq, tmp_path / "b", THERE)


def test_another_shelters_bundle_id_blocks_nothing_and_a_replay_counts_once(two, tmp_path):
    hq, a, b = two
    genuine = tmp_path / "a.bundle"
    export_bundle(a, genuine)
    # B's thief, seeing A's stick on the courier's round, signs a file of its own with A's
    # bundle id and has it imported first.
    import_bundle(hq, forge(b, tmp_path / "squat", [], bundle_id=header_of(genuine)["bundle_id"]))
    done = import_bundle(hq, genuine)
    assert done.applied == len(wire(a)) == hq.db.execute(
        "SELECT count(*) FROM events WHERE node_id = ?", [a.node_id]).fetchone()[0]
    with pytest.raises(BundleRefused, match="already imported"):
        import_bundle(hq, genuine)
    # A's own thief re-signs the same events under a new bundle id: each counts once.
    again = import_bundle(hq, forge(a, tmp_path / "again", [(a.node_id, wire(a))]))
    assert (again.applied, again.duplicates) == (0, len(wire(a)))


def test_a_reply_is_written_only_for_the_signers_own_ids(two, tmp_path):
    hq, a, b = two
    theirs = tmp_path / "b.bundle"
    export_bundle(b, theirs)
    import_bundle(hq, theirs)
    # A's thief copies B's bundle id and node id (both in the plain header) into a file
    # of its own: refused as imported already (authentic: signed by an enrolled node), for
    # which HQ writes a reply if asked. It must not be one for B's node.
    with pytest.raises(BundleRefused) as refused:
        import_bundle(hq, forge(a, tmp_path / "named", [], node_id=b.node_id,
                                bundle_id=header_of(theirs)["bundle_id"]))
    assert (refused.value.code, refused.value.authentic) == ("already_imported", True)
    with pytest.raises(BundleRefused, match="is not one of node"):
        write_reply(hq, refused.value.header, tmp_path / "b.reply")
    assert not (tmp_path / "b.reply").exists()
    write_reply(hq, header_of(theirs), tmp_path / "theirs.reply")  # B's own: written


def test_odd_files_and_bodies_are_refused_with_a_reason(two, tmp_path):
    hq, a, _ = two
    # On a courier's stick, a link to a device: /dev/zero would fill the memory, a pipe
    # would wait for ever; /dev/null shows the same check, at once.
    device = tmp_path / "device.bundle"
    device.symlink_to("/dev/null")
    with pytest.raises(BundleRefused, match="not a file"):
        bundle.read(device)
    # Signed by the thief: a few KB that would parse into gigabytes of small values.
    bomb = b'{"type":"courier_bundle","origins":[' + b"0," * (bundle.MAX_VALUES + 1) + b"0]}"
    with pytest.raises(BundleRefused, match="more than") as too_many:
        import_bundle(hq, forge(a, tmp_path / "bomb", [], body=bomb))
    assert too_many.value.code == "too_large"
    # Terminal escapes in what an operator's screen shows: refused, or shown quoted.
    with pytest.raises(BundleRefused) as escaped:
        import_bundle(hq, forge(a, tmp_path / "esc1", [], created_at="\x1b]0;x\x07"))
    assert escaped.value.code == "malformed"
    with pytest.raises(BundleRefused) as origin:
        import_bundle(hq, forge(a, tmp_path / "esc2", [("\x1b[2J", [])]))
    assert "\x1b" not in str(origin.value) and "\\x1b" in str(origin.value)
    (tmp_path / "version").write_bytes(b"SHELTER-BUNDLE \x1b[2J\n{}\n")
    with pytest.raises(BundleRefused) as version:
        bundle.read(tmp_path / "version")
    assert "\x1b" not in str(version.value)


@pytest.mark.parametrize("recorded_at", ["zzzz", "2099-01-01T00:00:00",
                                         "9999-12-31T23:59:59+00:00"])
def test_a_record_time_that_is_no_time_leaves_the_rebuild_report_true(tmp_path, recorded_at):
    """The old laptop's thief (not revoked yet) pushes an event whose recorded_at is any
    text of 40 characters: HQ stores it, and the replacement's report reads it as a time."""
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id=HQ_SHELTER)
    old = NodeContext(tmp_path / "old", shelter_id=HERE)
    enroll_at(hq, old.node_id, HERE)
    households.register_household(old.store, old.identity, household("太郎"))
    push(hq, old)
    honest = old.db.execute("SELECT max(recorded_at) FROM events").fetchone()[0]
    change_settings(old.store, {"wifi_name": "x"})
    forged = {**wire(old)[-1], "recorded_at": recorded_at}
    assert apply_batch(hq.store, old.node_id, HERE, [forged]).applied == 1
    new = NodeContext(tmp_path / "new", shelter_id=HERE)
    enroll_at(hq, new.node_id, HERE, replace=True)
    rebuild_in_process(hq, new)
    done = rebuild.summary(new.db)
    assert done.newest is not None and done.newest[:19] == honest[:19]
    assert any(line.startswith("  newest record: ") for line in report(new, done))


def next_second() -> None:
    """Until the clock's second moves on: a copy's name has the second it was made."""
    stamp = time.strftime("%S")
    deadline = time.monotonic() + 3
    while time.strftime("%S") == stamp and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_rotation_never_deletes_another_nodes_copies(tmp_path):
    """A replacement laptop given the old one's stick: the old copy (holding what the old
    node recorded after its last sync) stays; the new node keeps its own newest two."""
    old, new = NodeContext(tmp_path / "old"), NodeContext(tmp_path / "new")
    stick = tmp_path / "stick"
    stick.mkdir()
    for ctx in (old, new, new, new):
        assert backups.run_once(ctx, stick, 2) is None
        next_second()

    def writer(name):
        conn = sqlite3.connect(f"file:{stick / name}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()[0]
        finally:
            conn.close()

    assert [writer(name) for name in sorted(os.listdir(stick))] == \
        [old.node_id, new.node_id, new.node_id]


def test_a_replacement_code_says_which_old_nodes_still_sync(tmp_path):
    """The operator replacing a stolen laptop is told its credential still syncs."""
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id=HQ_SHELTER)
    enroll_at(hq, "NOLDLAPTOP", HERE)
    hq.db.conn.close()
    warned = run_cli("hq", "enroll", "--data", str(hq.data_dir), "--shelter", HERE,
                     "--replace")
    assert f"node NOLDLAPTOP of shelter {HERE} is not revoked" in warned.stderr
    assert warned.stdout.strip().startswith("ENR1.")
    enrollment.revoke_node(NodeContext(hq.data_dir, role="hq").store, "NOLDLAPTOP")
    quiet = run_cli("hq", "enroll", "--data", str(hq.data_dir), "--shelter", HERE,
                    "--replace")
    assert "not revoked" not in quiet.stderr and quiet.stdout.strip().startswith("ENR1.")


def test_a_bundles_made_at_that_is_no_time_leaves_hqs_sync_page_up(tmp_path):
    """The header's created_at is the thief's to choose (40 printable characters), and HQ's
    sync page lists every bundle imported with it, in Japan time."""
    from shelter.app import create_app
    from shelter.domain import accounts

    app = create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})
    hq = NodeContext(tmp_path / "hq", role="hq")
    a = enrolled(hq, tmp_path / "a", HERE)
    import_bundle(hq, forge(a, tmp_path / "late", [], created_at="9999-12-31T23:59:59+00:00"))
    token = accounts.create_token(hq.store, "operator", "")
    page = app.test_client().get("/hq/sync", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and a.node_id in page.get_data(as_text=True)
