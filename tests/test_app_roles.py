"""The factory decides the role: each role serves the routes of its table and no other, and
the pages both share show what belongs to the role they run in."""

from __future__ import annotations

from shelter.app import create_app


def rules(app) -> set[str]:
    return {rule.rule for rule in app.url_map.iter_rules()}


def test_each_role_serves_its_own_routes_and_no_others(tmp_path):
    node = create_app(tmp_path / "node", test_config={"TESTING": True})
    hq = create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})
    shared = {"/staff/login", "/staff/logout", "/trust", "/trust/shelter-ca.crt"}
    assert shared <= rules(node) and shared <= rules(hq)
    assert {"/desk", "/kiosk", "/supplies", "/staff/settings", "/api/v1/scans"} <= rules(node)
    assert not any(rule.startswith(("/hq", "/public", "/sync")) for rule in rules(node))
    assert {"/hq", "/public", "/sync", "/api/v1/summary"} <= rules(hq)
    assert not any(rule.startswith(("/desk", "/kiosk", "/supplies")) for rule in rules(hq))
    assert "/staff/settings" not in rules(hq)


def test_the_shared_pages_show_their_roles_start_and_name(tmp_path):
    node = create_app(tmp_path / "node", test_config={"TESTING": True})
    hq = create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})
    # HQ's /staff (where a sign-in without a destination ends) is its dashboard.
    assert hq.test_client().get("/staff").location == "/hq"
    assert node.test_client().get("/staff").location.startswith("/staff/login")
    missing = hq.test_client().get("/nowhere?lang=en").get_data(as_text=True)
    assert 'href="/hq"' in missing and "Prefecture HQ" in missing
    missing = node.test_client().get("/nowhere?lang=en").get_data(as_text=True)
    assert 'href="/register"' in missing and "Prefecture HQ" not in missing
