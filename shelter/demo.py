"""Demo data: a shelter with a few households, staff logins that are printed on start."""

from __future__ import annotations

from .auth import add_user
from .node import NodeContext
from .presence import scan
from .registry import register_household
from .settings import change_settings, get_settings
from .supplies import move, request_supplies

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


def seed(ctx: NodeContext) -> list[tuple[str, str, str]]:
    """Fill an empty demo node; on later starts leave its data as it is."""
    db = ctx.db
    if db.execute("SELECT count(*) FROM users").fetchone()[0] == 0:
        for role, user, password in DEMO_LOGINS:
            add_user(ctx.store, user, password, role)
    if get_settings(db)["shelter_name"] == "避難所":
        change_settings(ctx.store, {"shelter_name": "大阪市立中央小学校（デモ）",
                                    "wifi_name": "shelter-demo", "capacity": "300"})
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
