"""Stock by lot, days of supply, rationed items, requests to HQ, and the property that
stock on hand is always the sum of its movements."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelter.core.authority import Refused
from shelter.domain import (
    catalog,
    households,
    presence,
    stock,
    supplies,
    supply_requests,
)
from shelter.domain.settings import get_settings

from .conftest import VALID_HOUSEHOLD


@pytest.fixture
def node(app):
    return app.extensions["shelter"]


def register(node, whereabouts="shelter", members=None):
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data["whereabouts"] = whereabouts
    if members:
        data["members"] = members
    return households.register_household(node.store, node.identity, data)


def person(given, born, needs=()):
    return {"family_name": "山田", "given_name": given, "family_name_kana": "やまだ",
            "birth_date": born, "needs": list(needs)}


def check_in(node, household):
    for m in household["members"]:
        presence.scan(node.store, node.shelter_id, node.card_keys(), m["code"], "check_in")


def move(node, manager=True, **data):
    return stock.move(node.store, node.shelter_id, data, "tester", may_override=manager)


def item(node, item_id):
    return next(i for i in stock.stock(node.db, node.shelter_id,
                                          get_settings(node.db))["items"]
                if i["item_id"] == item_id)


def test_the_basic_eight_and_water_are_there_from_the_start(node):
    ids = [i["item_id"] for i in catalog.items(node.db)]
    assert ids == ["water", "food", "blanket", "infant_formula", "infant_diapers",
                   "adult_diapers", "portable_toilet", "toilet_paper", "sanitary"]


def test_days_of_supply_follow_the_headcount_and_its_audience(node):
    baby_year = date.today().year - 1
    family = register(node, members=[person("太郎", "1950-01-01"),
                                     person("陽向", f"{baby_year}-01-01", ["infant"])])
    check_in(node, family)
    register(node, whereabouts="home", members=[person("次郎", "1990-01-01")])  # collects
    register(node, whereabouts="home", members=[person("三郎", "1991-01-01")])
    assert stock.population(node.db, node.shelter_id) == {
        "everyone": 4, "infants": 1, "elderly": 1}
    move(node, item_id="water", kind="received", quantity=120, source="hq_shipment")
    water = item(node, "water")
    assert (water["on_hand"], water["daily_need"], water["days_of_supply"]) == (120, 12.0, 10.0)
    move(node, item_id="infant_formula", kind="received", quantity=600, source="donation")
    assert item(node, "infant_formula")["days_of_supply"] == 4.0  # 150 g a day, one infant
    assert item(node, "blanket")["days_of_supply"] is None  # not used up by the day


def test_hand_outs_take_the_lot_that_expires_first(node):
    move(node, item_id="food", kind="received", quantity=10, lot="B", expires_on="2027-03-01")
    move(node, item_id="food", kind="received", quantity=10, lot="A", expires_on="2027-01-01")
    move(node, item_id="food", kind="received", quantity=5)
    assert item(node, "food")["suggested_lot"] == "A"
    result = move(node, item_id="food", kind="distributed", quantity=14)
    assert [(m["lot"], m["delta"]) for m in result["movements"]] == [("A", -10), ("B", -4)]
    lots = {lot["lot"]: lot["on_hand"] for lot in item(node, "food")["lots"]}
    assert lots == {"B": 6, "": 5}
    assert item(node, "food")["consumed_24h"] == 14


def test_more_than_on_hand_is_refused_unless_a_manager_overrides_with_a_reason(node):
    move(node, item_id="water", kind="received", quantity=10)
    before = node.db.execute("SELECT count(*) FROM events").fetchone()[0]
    for data, manager, code in (({}, True, "insufficient_stock"),
                                ({"override": True}, False, "override_not_allowed"),
                                ({"override": True}, True, "reason_required")):
        with pytest.raises(supplies.SupplyError) as refused:
            move(node, manager, item_id="water", kind="distributed", quantity=12, **data)
        assert refused.value.code == code
    assert node.db.execute("SELECT count(*) FROM events").fetchone()[0] == before
    result = move(node, item_id="water", kind="distributed", quantity=12, override=True,
                  reason="給水車が来るまでの分")
    assert result["item"]["on_hand"] == -2
    assert node.db.execute("SELECT count(*) FROM stock_movements WHERE override = 1"
                           ).fetchone()[0] == 1


@pytest.mark.parametrize("data, code", [
    ({"item_id": "water", "kind": "received", "quantity": -5}, "invalid_quantity"),
    ({"item_id": "water", "kind": "received", "quantity": 0}, "invalid_quantity"),
    ({"item_id": "water", "kind": "received", "quantity": 10**9}, "invalid_quantity"),
    ({"item_id": "water", "kind": "received", "quantity": "many"}, "invalid_quantity"),
    ({"item_id": "water", "kind": "received", "quantity": True}, "invalid_quantity"),
    ({"item_id": "water", "kind": "received", "quantity": 1.5}, "invalid_quantity"),
    ({"item_id": "caviar", "kind": "received", "quantity": 5}, "unknown_item"),
    ({"item_id": "caviar", "kind": "counted", "quantity": 5}, "unknown_item"),
    ({"item_id": "water", "kind": "stolen", "quantity": 5}, "invalid_kind"),
    ({"item_id": "water", "kind": "received", "quantity": 5, "expires_on": "2027-02-30"},
     "invalid_date"),
    ({"item_id": "water", "kind": "received", "quantity": 5, "source": "magic"},
     "invalid_source"),
    ({"item_id": "water", "kind": "transferred", "quantity": 1}, "insufficient_stock"),
    ({"item_id": "water", "kind": "counted", "quantity": 3}, "reason_required"),
    ({"item_id": "water", "kind": "distributed", "quantity": 1, "code": "SHC1.X"}, "garbled"),
])
def test_bad_movements_are_refused_and_nothing_is_half_saved(node, data, code):
    before = node.db.execute("SELECT count(*) FROM events").fetchone()[0]
    with pytest.raises(supplies.SupplyError) as refused:
        move(node, **data)
    assert refused.value.code == code and refused.value.status in (403, 404, 409, 422)
    assert node.db.execute("SELECT count(*) FROM events").fetchone()[0] == before


def test_a_stocktake_records_the_difference_with_its_reason(node):
    move(node, item_id="toilet_paper", kind="received", quantity=50, lot="L1",
         expires_on="")
    move(node, item_id="toilet_paper", kind="received", quantity=20)
    result = move(node, item_id="toilet_paper", kind="counted", quantity=64,
                  reason="配布記録もれ")
    assert sum(m["delta"] for m in result["movements"]) == -6
    assert result["item"]["on_hand"] == 64
    same = move(node, item_id="toilet_paper", kind="counted", quantity=64)
    assert [m["delta"] for m in same["movements"]] == [0]


def test_transfers_and_discards_say_where_and_why(node):
    move(node, item_id="blanket", kind="received", quantity=30)
    with pytest.raises(supplies.SupplyError) as refused:
        move(node, item_id="blanket", kind="transferred", quantity=5)
    assert refused.value.code == "destination_required"
    move(node, item_id="blanket", kind="transferred", quantity=5, destination="東小学校")
    with pytest.raises(supplies.SupplyError):
        move(node, item_id="blanket", kind="discarded", quantity=2)
    move(node, item_id="blanket", kind="discarded", quantity=2, reason="damaged")
    assert item(node, "blanket")["on_hand"] == 23


def test_a_rationed_item_warns_when_a_household_collects_again(node):
    baby = register(node, members=[person("陽向", f"{date.today().year - 1}-05-05",
                                          ["infant"]),
                                   person("美咲", "1990-06-15")])
    move(node, item_id="infant_diapers", kind="received", quantity=100)
    mother, child = baby["members"][1], baby["members"][0]
    move(node, item_id="infant_diapers", kind="distributed", quantity=8, code=mother["code"])
    with pytest.raises(supplies.SupplyError) as warned:
        move(node, item_id="infant_diapers", kind="distributed", quantity=8,
             code=child["short_code"])  # another member of the same household
    assert warned.value.code == "collected_recently" and warned.value.params["quantity"] == 8
    move(node, item_id="infant_diapers", kind="distributed", quantity=8, code=child["code"],
         confirm_repeat=True)
    assert item(node, "infant_diapers")["on_hand"] == 84
    # Water is not rationed: no warning.
    move(node, item_id="water", kind="received", quantity=10)
    for _ in range(2):
        move(node, item_id="water", kind="distributed", quantity=2, code=mother["code"])


def hq_steps(node, tmp_path, request_id):
    """HQ acknowledges and dispatches the request, as it does: the node's events applied at
    a real HQ store, HQ's steps pulled back down (only HQ may take these steps)."""
    from shelter.core.node import NodeContext
    from sync.apply import apply_batch
    from sync.protocol import for_wire
    from sync.pull import apply_pulled, updates_for

    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ-OSAKA")
    apply_batch(hq.store, node.node_id, node.shelter_id, [for_wire(r) for r in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])])
    supply_requests.acknowledge(hq.store, request_id, "手配中")
    supply_requests.dispatch(hq.store, request_id, [{"item_id": "water", "quantity": 12}],
                      "2026-11-26T09:00:00+09:00")
    events, cursor = updates_for(hq.db, node.shelter_id, node.node_id, 0)
    assert apply_pulled(node.store, events, cursor) == 2


def test_a_request_goes_requested_acknowledged_dispatched_received(node, tmp_path):
    check_in(node, register(node))
    suggested = supply_requests.suggested_request(node.db, node.shelter_id, get_settings(node.db))
    assert {"item_id": "water", "quantity": 9} in suggested  # 3 L x 1 person x 3 days
    request_id = supply_requests.request_supplies(node.store, node.shelter_id, {
        "lines": suggested, "urgency": "urgent", "note": "水が足りません"}, "manager")
    # On its way: the next suggestion does not ask again.
    assert supply_requests.suggested_request(node.db, node.shelter_id, get_settings(node.db)) == []
    with pytest.raises(Refused):  # a node cannot take HQ's steps itself
        supply_requests.acknowledge(node.store, request_id, "手配中")
    hq_steps(node, tmp_path, request_id)
    supply_requests.receive(node.store, node.shelter_id, request_id,
                     {"lines": [{"item_id": "water", "quantity": 10}], "note": "2本破損"})
    (request,) = supply_requests.requests(node.db)
    assert request["status"] == "received"
    assert [h["status"] for h in request["history"]] == [
        "requested", "acknowledged", "dispatched", "received"]
    assert request["dispatched"] == [{"item_id": "water", "quantity": 12}]
    assert request["received"] == [{"item_id": "water", "quantity": 10}]
    assert item(node, "water")["on_hand"] == 10
    with pytest.raises(supplies.SupplyError) as again:
        supply_requests.receive(node.store, node.shelter_id, request_id, {"lines": []})
    assert again.value.code == "already_received"


@pytest.mark.parametrize("data, code", [
    ({"lines": []}, "invalid_lines"),
    ({"lines": [{"item_id": "water", "quantity": 0}]}, "invalid_quantity"),
    ({"lines": [{"item_id": "nope", "quantity": 1}]}, "unknown_item"),
    ({"lines": [{"item_id": "water", "quantity": 1}] * 2}, "duplicate_line"),
    ({"lines": [{"item_id": "water", "quantity": 1}], "urgency": "whenever"},
     "invalid_urgency"),
    ("water please", "invalid"),
])
def test_bad_requests_are_refused(node, data, code):
    with pytest.raises(supplies.SupplyError) as refused:
        supply_requests.request_supplies(node.store, node.shelter_id, data)
    assert refused.value.code == code
    assert supply_requests.requests(node.db) == []


def test_managers_add_items_with_their_own_norms(node):
    item_id = catalog.add_item(node.store, {"name_ja": "マスク", "name_en": "Masks",
                                             "unit": "piece", "norm_per_day": "1",
                                             "ration_hours": "24"})
    move(node, item_id=item_id, kind="received", quantity=10)
    assert item(node, item_id)["unit"] == "piece"
    with pytest.raises(supplies.SupplyError) as dup:
        catalog.add_item(node.store, {"name_ja": "マスク", "unit": "piece"})
    assert dup.value.code == "item_exists"
    catalog.change_norm(node.store, "water", "2.5", "0")
    assert item(node, "water")["norm_per_day"] == 2.5


MOVES = st.lists(st.tuples(
    st.sampled_from(["water", "food"]),
    st.sampled_from(stock.KINDS),
    st.integers(min_value=-3, max_value=40),
    st.sampled_from(["", "A", "B"]),
    st.booleans()), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=MOVES)
def test_stock_is_the_sum_of_its_movements_and_never_negative_without_an_override(
        tmp_path_factory, moves):
    from shelter.app import create_app
    app = create_app(tmp_path_factory.mktemp("prop"), test_config={"SHELTER_ID": "E1"})
    node = app.extensions["shelter"]
    for item_id, kind, quantity, lot, override in moves:
        data = {"item_id": item_id, "kind": kind, "quantity": quantity, "lot": lot,
                "override": override, "reason": "棚卸し" if override or kind == "counted"
                else "", "destination": "東小学校", "source": "donation"}
        try:
            move(node, **data)
        except supplies.SupplyError:
            pass  # refused: must have changed nothing, which the sums below check
    db = node.db
    for item_id in ("water", "food"):
        total = db.execute("SELECT coalesce(sum(delta), 0) FROM stock_movements "
                           "WHERE item_id = ?", [item_id]).fetchone()[0]
        events = sum(e.payload["delta"] for e in node.store.events()
                     if e.type == "stock_moved" and e.payload["item_id"] == item_id)
        on_hand = db.execute("SELECT coalesce(sum(on_hand), 0) FROM stock_lots "
                             "WHERE item_id = ?", [item_id]).fetchone()[0]
        assert total == events == on_hand
        negative = db.execute("SELECT count(*) FROM stock_lots WHERE item_id = ? "
                              "AND on_hand < 0", [item_id]).fetchone()[0]
        overrides = db.execute("SELECT count(*) FROM stock_movements WHERE item_id = ? "
                               "AND override = 1", [item_id]).fetchone()[0]
        assert not negative or overrides
    db.conn.close()
