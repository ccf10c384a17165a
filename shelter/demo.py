"""The demo: the prefecture HQ and three shelters on localhost, enrolled and syncing, with
households, stock and logins, and families arriving for a few minutes."""

from __future__ import annotations

import random
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from shelter.core.node import NodeContext
from shelter.domain.accounts import add_user
from shelter.domain.households import register_household
from shelter.domain.presence import scan
from shelter.domain.settings import change_settings, get_settings
from shelter.domain.stock import move
from shelter.domain.supply_requests import request_supplies

DEMO_LOGINS = [("manager", "manager", "demo-manager-1"),
               ("volunteer", "volunteer", "demo-volunteer-1"),
               ("kiosk", "kiosk", "demo-kiosk-1")]

HOUSEHOLDS = [
    {"address": "大阪市中央区大手前2丁目", "postal_code": "540-0008", "phone": "06-0000-0001",
     "whereabouts": "shelter", "consent": "relatives", "language": "ja",
     "members": [
         {"family_name": "山田", "given_name": "太郎", "family_name_kana": "やまだ",
          "given_name_kana": "たろう", "birth_date": "1948-04-02", "sex": "male",
          "needs": ["elderly", "chronic_illness"]},
         {"family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
          "given_name_kana": "ハナコ", "birth_date": "1951-11-20", "sex": "female",
          "needs": ["elderly", "wheelchair"]}]},
    {"address": "大阪市中央区谷町4丁目", "postal_code": "540-0012", "phone": "",
     "whereabouts": "car", "consent": "acquaintances", "language": "ja",
     "members": [
         {"family_name": "佐藤", "given_name": "美咲", "family_name_kana": "さとう",
          "given_name_kana": "みさき", "birth_date": "1990-06-15", "sex": "female",
          "needs": ["pregnant_nursing"]},
         {"family_name": "佐藤", "given_name": "陽向", "family_name_kana": "さとう",
          "given_name_kana": "ひなた", "birth_date": "2025-03-01", "sex": "male",
          "needs": ["infant", "allergy"], "allergies": "卵 (egg)"}]},
    {"address": "Osaka, Chuo-ku, Honmachi 1-1", "postal_code": "541-0053",
     "phone": "080-0000-0003", "whereabouts": "shelter", "consent": "none", "language": "vi",
     "members": [
         {"family_name": "Nguyễn", "given_name": "Thị Lan", "family_name_kana": "グエン",
          "given_name_kana": "ティ ラン", "birth_date": "1998-09-09", "sex": "female",
          "needs": ["language_support"]}]},
    {"address": "大阪市中央区大手前2丁目", "postal_code": "540-0008", "phone": "",
     "whereabouts": "home", "consent": "relatives", "language": "ja",
     "members": [  # the same man registering again at the kiosk: a likely duplicate
         {"family_name": "山田", "given_name": "太郎", "family_name_kana": "ヤマダ",
          "given_name_kana": "タロウ", "birth_date": "1948-04-02", "sex": "male",
          "needs": ["elderly"]}]},
]


HQ_LOGINS = [("admin", "admin", "demo-admin-1"), ("operator", "operator", "demo-operator-1")]
SHELTERS = [("DEMO-OSAKA-001", "大阪市立中央小学校（デモ）", "300"),
            ("DEMO-OSAKA-002", "大阪市立東中学校（デモ）", "180"),
            ("DEMO-SAKAI-001", "堺市立西小学校（デモ）", "120")]


def seed(ctx: NodeContext, name: str = SHELTERS[0][1],
         capacity: str = "300") -> list[tuple[str, str, str]]:
    """Fill an empty demo node; on later starts leave its data as it is."""
    db = ctx.db
    if db.execute("SELECT count(*) FROM users").fetchone()[0] == 0:
        for role, user, password in DEMO_LOGINS:
            add_user(ctx.store, user, password, role)
    if get_settings(db)["shelter_name"] == "避難所":
        change_settings(ctx.store, {"shelter_name": name, "wifi_name": "shelter-demo",
                                    "capacity": capacity})
    if db.execute("SELECT count(*) FROM households").fetchone()[0] == 0:
        for household in HOUSEHOLDS:
            result = register_household(ctx.store, ctx.identity, household)
            if household["whereabouts"] == "shelter":  # arrived: checked in at the desk
                for member in result["members"]:
                    scan(ctx.store, ctx.shelter_id, ctx.card_keys(), member["code"],
                         "check_in", actor="demo")
    if db.execute("SELECT count(*) FROM stock_movements").fetchone()[0] == 0:
        for item_id, quantity, lot, expires in (
                ("water", 2000, "W-2611", "2027-11-01"), ("food", 900, "F-2612", "2027-06-30"),
                ("blanket", 320, "", ""), ("infant_formula", 1200, "M-2704", "2027-04-25"),
                ("infant_diapers", 60, "", ""), ("toilet_paper", 40, "", "")):
            move(ctx.store, ctx.shelter_id, {"item_id": item_id, "kind": "received",
                                             "quantity": quantity, "lot": lot,
                                             "expires_on": expires, "source": "hq_shipment"},
                 "demo")
        request_supplies(ctx.store, ctx.shelter_id, {
            "lines": [{"item_id": "infant_diapers", "quantity": 200},
                      {"item_id": "portable_toilet", "quantity": 500}],
            "urgency": "urgent", "note": "おむつと携帯トイレが不足しています"}, "demo")
    return DEMO_LOGINS


# The demo's registry, in the standard open-data CSV format (指定避難所一覧): its three
# shelters and a few on standby, so that the map has something to show.
DEMO_REGISTRY = [
    ("271004", "DEMO-OSAKA-001", "大阪市", SHELTERS[0][1], "大阪市中央区本町1-1", 34.6825,
     135.5025, 300),
    ("271004", "DEMO-OSAKA-002", "大阪市", SHELTERS[1][1], "大阪市東成区中道2-2", 34.6745,
     135.5420, 180),
    ("271403", "DEMO-SAKAI-001", "堺市", SHELTERS[2][1], "堺市堺区南瓦町3-3", 34.5733,
     135.4830, 120),
] + [("271004", f"DEMO-OSAKA-1{n:02d}", "大阪市", f"大阪市立待機小学校{n}（デモ）",
      f"大阪市北区{n}丁目", 34.70 + n * 0.006, 135.47 + (n % 4) * 0.02, 200) for n in range(8)]


def seed_hq(ctx: NodeContext) -> None:
    if ctx.db.execute("SELECT count(*) FROM users").fetchone()[0] == 0:
        for role, user, password in HQ_LOGINS:
            add_user(ctx.store, user, password, role)
    if ctx.db.execute("SELECT count(*) FROM hq_shelters").fetchone()[0] == 0:
        from shelter.hq.shelters import import_file
        path = ctx.data_dir / "demo-registry.csv"
        lines = ["全国地方公共団体コード,共通ID,地方公共団体名,名称,所在地_連結表記,緯度,経度,"
                 "想定収容人数"]
        lines += [",".join(str(v) for v in (code, sid, f"大阪府{city}", name, address, lat,
                                            lon, capacity))
                  for code, sid, city, name, address, lat, lon, capacity in DEMO_REGISTRY]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        import_file(ctx.store, path)
        from shelter.hq import outlines
        outlines.refresh(ctx.store)  # the map's municipality outlines


GIVEN = ["大翔", "結衣", "陽菜", "蓮", "さくら", "悠真", "葵", "湊", "美咲", "健太", "Lan", "Minh"]
GIVEN_KANA = ["ひろと", "ゆい", "ひな", "れん", "さくら", "ゆうま", "あおい", "みなと", "みさき",
              "けんた", "らん", "みん"]
FAMILY = [("田中", "たなか"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("伊藤", "いとう"),
          ("渡辺", "わたなべ"), ("中村", "なかむら"), ("小林", "こばやし"), ("加藤", "かとう")]


def simulate_arrivals(contexts: list[NodeContext], stop: threading.Event, minutes: float,
                      seed_value: int = 2026) -> None:
    """Families arriving, going out and coming back at the demo shelters for a while."""
    rng = random.Random(seed_value)
    deadline = time.monotonic() + minutes * 60
    while not stop.is_set() and time.monotonic() < deadline:
        if stop.wait(rng.uniform(2.0, 6.0)):
            return
        ctx = rng.choice(contexts)
        try:
            if rng.random() < 0.7:
                family, family_kana = rng.choice(FAMILY)
                members = []
                for _ in range(rng.choice([1, 1, 2, 3, 4])):
                    i = rng.randrange(len(GIVEN))
                    needs = rng.sample(["elderly", "infant", "allergy", "wheelchair",
                                        "chronic_illness"], k=rng.choice([0, 0, 1]))
                    members.append({
                        "family_name": family, "given_name": GIVEN[i],
                        "family_name_kana": family_kana, "given_name_kana": GIVEN_KANA[i],
                        "birth_date": f"{rng.randint(1935, 2025)}-{rng.randint(1, 12):02d}-"
                                      f"{rng.randint(1, 28):02d}",
                        "needs": needs,
                        # an allergy must say to what (registration refuses it otherwise)
                        "allergies": rng.choice(["卵", "小麦", "そば", "えび"])
                        if "allergy" in needs else ""})
                result = register_household(ctx.store, ctx.identity, {
                    "address": "大阪府", "whereabouts": "shelter", "consent": "relatives",
                    "language": "ja", "members": members})
                for member in result["members"]:
                    scan(ctx.store, ctx.shelter_id, ctx.card_keys(), member["code"],
                         "check_in", actor="demo")
            else:
                row = ctx.db.execute("SELECT p.short_code FROM presence pr JOIN persons p "
                                     "ON p.person_id = pr.person_id WHERE pr.shelter_id = ? "
                                     "ORDER BY random() LIMIT 1", [ctx.shelter_id]).fetchone()
                if row:
                    scan(ctx.store, ctx.shelter_id, ctx.card_keys(), row[0],
                         rng.choice(["auto", "auto", "check_out"]), destination="home",
                         actor="demo")
        except Exception as error:  # noqa: BLE001 - a demo keeps going
            print(f"demo arrival skipped: {type(error).__name__}", flush=True)


def run(root: Path, port: int, http_port: int, hq_port: int, minutes: float,
        standby: bool = False) -> int:
    """HQ and three shelters on localhost, enrolled and syncing; with ``standby``, HQ
    streams to a replica and, when HQ's process is killed, a standby HQ is restored from it
    on the next port, and the nodes (given HQ's address, told the standby's by HQ) move
    to it."""
    from shelter import launch
    from shelter.core import meta, server, tls
    from sync import client, enrollment, hq_addresses
    hq = NodeContext(root / "hq", role="hq")
    seed_hq(hq)
    hq_listener, lines = launch.hq_listener(hq, hq_port, "127.0.0.1")
    hq_listener.start()
    listeners = [hq_listener]
    addresses = f"https://127.0.0.1:{hq_port}"
    if standby:
        from shelter.hq import replica
        hq_listener.restart = False  # killed, it stays down: the standby takes over
        listeners.append(replica.replicator(hq.data_dir, replica.replica_url(
            str((root / "replica").resolve()))))
    # As `shelter hq --addresses`: HQ tells the nodes where its standby will answer.
    meta.commit(hq.store, {hq_addresses.ADVERTISED_KEY: addresses + (
        f",https://127.0.0.1:{hq_port + 1}" if standby else "")})
    try:
        server.wait_for_https(hq_port)
        ca_cert, _ = tls.ca_paths(hq.data_dir)
        der = ssl.PEM_cert_to_DER_cert(ca_cert.read_text())
        contexts = []
        for i, (shelter_id, name, capacity) in enumerate(SHELTERS):
            ctx = NodeContext(root / f"node-{shelter_id.lower()}", shelter_id=shelter_id)
            seed(ctx, name, capacity)
            if not meta.get(ctx.db, "hq_credential"):
                with hq.store.write() as db:
                    code = enrollment.issue_code(db, shelter_id, der)
                client.enroll(ctx, addresses, code)
            elif meta.get(ctx.db, "hq_url") != addresses:
                meta.commit(ctx.store, {"hq_url": addresses})
            node_listeners, node_lines = launch.node_listeners(ctx, port + i, http_port + i,
                                                            "127.0.0.1")
            listeners += node_listeners
            lines += [""] + node_lines
            contexts.append(ctx)
    except BaseException:
        if hq_listener.process:
            hq_listener.process.terminate()
        raise
    lines += ["", "Demo (on this computer: plain HTTP is fine for localhost):",
              f"  self-registration:  http://localhost:{http_port}/register",
              f"  kiosk mode:         http://localhost:{http_port}/kiosk",
              f"  staff:              http://localhost:{http_port}/staff",
              f"  (the other shelters: HTTP ports {http_port + 1} and {http_port + 2})",
              f"  prefecture HQ:      https://localhost:{hq_port}/hq",
              f"  public page:        https://localhost:{hq_port}/public",
              "  logins at every shelter:"]
    lines += [f"    {role:<10} {user} / {password}" for role, user, password in DEMO_LOGINS]
    lines += ["  logins at HQ:"]
    lines += [f"    {role:<10} {user} / {password}" for role, user, password in HQ_LOGINS]
    if standby:
        lines += [f"Standby: HQ streams to {root / 'replica'} (Litestream). To see the "
                  f"failover: pkill -9 -f 'bind 127.0.0.1:{hq_port}' (HQ's server and its "
                  "worker, as if its site were lost); a standby HQ is restored from "
                  f"the replica at https://localhost:{hq_port + 1}/hq and the shelters "
                  "move to it."]
    lines += [f"Arrivals are simulated for {minutes:g} minutes. Ctrl-C stops the demo; its "
              f"data stays in {root}"]
    print("\n".join(lines), flush=True)
    stop = threading.Event()
    for ctx in contexts:
        launch.start_sync(ctx, stop, max_backoff=5.0)
    if minutes > 0:
        threading.Thread(target=simulate_arrivals, args=(contexts, stop, minutes),
                         daemon=True).start()
    if standby:
        threading.Thread(target=_fail_over, args=(root, hq_listener, hq_port + 1, listeners,
                                                  stop), daemon=True).start()
    try:
        return server.supervise(listeners)
    finally:
        stop.set()


def _fail_over(root: Path, primary: Any, port: int, listeners: list[Any],
               stop: threading.Event) -> None:
    """The demo's standby: once HQ's process is gone, restore the replica as a new HQ
    epoch and serve it on ``port`` (supervised from then on like the rest)."""
    import shutil

    from shelter import launch
    from shelter.core import server
    from shelter.hq import replica
    while not stop.wait(0.5):
        if primary.process is not None and primary.process.poll() is not None:
            break
    else:
        return
    lost = time.monotonic()
    target = root / "standby-hq"
    shutil.rmtree(target, ignore_errors=True)  # a standby of an earlier demo run
    try:
        url = replica.replica_url(str((root / "replica").resolve()))
        old, new, _ = replica.restore(target, url)
        ctx = NodeContext(target, role="hq")
        listener, _ = launch.hq_listener(ctx, port, "127.0.0.1")
        listener.start()
        server.wait_for_https(port)
    except Exception as error:  # noqa: BLE001 - the demo says so and goes on without it
        print(f"standby HQ could not start: {error}", flush=True)
        return
    listeners.append(listener)
    print(f"HQ {old} is gone; standby HQ {new} restored from the replica answers at "
          f"https://localhost:{port}/hq after {time.monotonic() - lost:.1f} s; the shelters "
          "move to it and send what the replica lacked", flush=True)
    stop.wait()  # the standby's server dies with the thread that started it (PDEATHSIG)
