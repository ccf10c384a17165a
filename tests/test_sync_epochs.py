"""Backups, restores and copies: a node restored from an old backup, a data directory
copied elsewhere, an HQ restored from an older backup. Sequence numbers are never reused,
and after healing HQ holds every event exactly once."""

from __future__ import annotations

import shutil

from shelter.core.node import NodeContext
from shelter.domain.cards import parse_code

from .conftest import api, enrolled_node, run_cli, start_hq, start_node, wait_until
from .test_sync_faults import activity, assert_exactly_once, read

SHELTER_ID = "E2710000005252"


def all_origins_at_hq(node, hq):
    ctx = NodeContext(node.data)
    try:
        from shelter.core.backup import own_origins
        origins = own_origins(ctx.db.conn)
        mine = {r[0] for r in ctx.db.execute(
            f"SELECT event_id FROM events WHERE node_id IN ({','.join('?' * len(origins))}) "
            "AND type NOT IN ('user_added', 'token_created')", origins)}
    finally:
        ctx.db.conn.close()
    theirs = {r[0] for r in read(hq.data / "shelter.db", "SELECT event_id FROM events")}
    return mine <= theirs and len(origins) >= 2


def test_a_node_restored_from_an_old_backup_starts_a_new_epoch(tmp_path):
    hq = start_hq(tmp_path / "hq")
    node = enrolled_node(hq, tmp_path / "node", SHELTER_ID, "--sync-max-backoff", "2")
    try:
        kiosk = node.token("kiosk")
        activity(node, 3, "前")
        printed = api(node, "POST", "/api/v1/households", kiosk, json={
            "address": "大阪市", "whereabouts": "shelter", "consent": "none",
            "members": [{"family_name": "札", "family_name_kana": "ふだ",
                         "birth_date": "1980-01-01"}]}).json()["members"][0]
        backup_file = tmp_path / "node-backup.db"
        out = run_cli("backup", "--data", str(node.data), "--to", str(backup_file)).stdout
        assert "backed up" in out and backup_file.stat().st_size > 0
        activity(node, 3, "後")  # made after the backup; HQ gets them; the disk then dies
        assert_exactly_once(node, hq)
        node.stop()
        restored = run_cli("restore", "--data", str(node.data), "--from", str(backup_file))
        assert "new epoch" in restored.stdout
        node = start_node(node.data, "--hq", hq.url, "--sync-max-backoff", "2")
        activity(node, 3, "復旧")
        wait_until(lambda: all_origins_at_hq(node, hq), timeout=90, interval=0.5,
                   what="both epochs at HQ")
        assert read(hq.data / "shelter.db", "SELECT count(*) FROM sync_conflicts") == [(0,)]
        # A card printed before the backup still reads as genuine at the desk.
        scanned = api(node, "POST", "/api/v1/scans", node.token("volunteer"),
                      json={"code": printed["code"], "action": "check_in"})
        assert scanned.status_code == 200 and scanned.json()["card_verified"]
        assert parse_code(printed["code"], node.card_keys()).verified
    finally:
        node.stop()
        hq.stop()


def test_a_copied_data_directory_takes_a_new_node_id(tmp_path):
    original = NodeContext(tmp_path / "a", shelter_id=SHELTER_ID)
    original.store.append("settings_changed", {"capacity": "10"})
    first_id = original.node_id
    original.db.conn.close()
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    copy = NodeContext(tmp_path / "copy")
    assert copy.node_id != first_id
    event, _ = copy.store.append("settings_changed", {"capacity": "11"})
    assert (event.node_id, event.seq) == (copy.node_id, 1)
    again = NodeContext(tmp_path / "a")
    assert again.node_id == first_id  # the original, where it was, keeps its id


def test_hq_restored_from_an_older_backup_is_sent_what_it_lost(tmp_path):
    hq = start_hq(tmp_path / "hq")
    node = enrolled_node(hq, tmp_path / "node", SHELTER_ID, "--sync-max-backoff", "2")
    try:
        activity(node, 2, "一")
        assert_exactly_once(node, hq)
        hq_backup = tmp_path / "hq-backup.db"
        run_cli("backup", "--data", str(hq.data), "--to", str(hq_backup))
        activity(node, 3, "二")
        assert_exactly_once(node, hq)
        hq.stop()
        run_cli("restore", "--data", str(hq.data), "--from", str(hq_backup))
        hq.process = start_hq(hq.data, hq.port).process
        assert_exactly_once(node, hq)  # the node re-sends what the restored HQ lacks
    finally:
        node.stop()
        hq.stop()
