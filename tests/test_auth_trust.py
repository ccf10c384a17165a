"""Accounts you can trust: roles per side, server-side sessions, sign-in throttling that
no stranger can turn into a lock-out, and no common passwords."""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from shelter.app import create_app
from shelter.core.events import new_id
from shelter.core.node import NodeContext
from shelter.domain import signin
from shelter.domain.accounts import (
    Principal,
    add_user,
    create_token,
    hash_password,
    set_user_disabled,
)

from .conftest import run_cli

COOKIE = "shelter_session"


def csrf_of(client, path="/staff/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def sign_in(client, username, password, lang="en"):
    return client.post(f"/staff/login?lang={lang}", data={
        "csrf": csrf_of(client), "username": username, "password": password})


def client_from(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def hq_app(tmp_path):
    return create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})


@pytest.fixture
def clock(monkeypatch):
    """signin's clock, held still and moved by hand."""
    moment = [datetime(2026, 9, 1, 3, 0, tzinfo=UTC)]
    monkeypatch.setattr(signin, "now", lambda: moment[0])

    def move(seconds: float) -> None:
        moment[0] += timedelta(seconds=seconds)
    return move


# --- roles per side ----------------------------------------------------------------------

def test_each_side_refuses_the_other_sides_roles_at_the_cli(tmp_path):
    hq = tmp_path / "hq"
    NodeContext(hq, role="hq").db.conn.close()
    for command in (["token", "create", "--data", str(hq), "--role", "volunteer"],
                    ["user", "add", "--data", str(hq), "--username", "m", "--role", "manager",
                     "--password", "long-enough-1"]):
        refused = run_cli(*command, check=False)
        assert refused.returncode == 2, refused.stderr
        assert "not on HQ" in refused.stderr and "operator, admin" in refused.stderr
        assert "Traceback" not in refused.stderr
    node = tmp_path / "node"
    refused = run_cli("token", "create", "--data", str(node), "--role", "admin", check=False)
    assert refused.returncode == 2 and "HQ role" in refused.stderr
    assert not (node / "shelter.db").exists()  # an HQ role does not make a node's directory
    run_cli("user", "add", "--data", str(node), "--username", "boss", "--role", "manager",
            "--password", "long-enough-1")
    refused = run_cli("user", "add", "--data", str(node), "--username", "op", "--role",
                      "operator", "--password", "long-enough-1", check=False)
    assert refused.returncode == 2 and "not on a shelter node" in refused.stderr
    assert run_cli("token", "create", "--data", str(hq), "--role", "operator"
                   ).stdout.startswith("sht_")


def test_roles_rank_only_within_their_side():
    assert Principal("a", "admin").can("operator") and Principal("m", "manager").can("kiosk")
    assert not Principal("a", "admin").can("manager")
    assert not Principal("m", "manager").can("operator")
    assert not Principal("v", "volunteer").can("operator")
    assert not Principal("o", "operator").can("volunteer")
    assert not Principal("o", "operator").can("admin")
    assert not Principal("x", "king").can("kiosk")


def test_an_old_node_role_token_or_account_at_hq_reaches_nothing(hq_app, app):
    hq = hq_app.extensions["shelter"]
    # Rows as an older version (or a forged event) left them: no check on the way in.
    old_token = "sht_old-volunteer-token"
    hq.store.append("token_created", {
        "token_id": new_id(), "role": "volunteer", "label": "",
        "token_hash": hashlib.sha256(old_token.encode()).hexdigest()})
    hq.store.append("user_added", {"user_id": new_id(), "username": "vol", "role": "volunteer",
                                   "password_hash": hash_password("volunteer-pass-1")})
    client = hq_app.test_client()
    summary = client.get("/api/v1/summary", headers={"Authorization": f"Bearer {old_token}"})
    assert summary.status_code == 401, summary.get_data(as_text=True)
    operator = create_token(hq.store, "operator")
    assert client.get("/api/v1/summary",
                      headers={"Authorization": f"Bearer {operator}"}).status_code == 200
    assert sign_in(hq_app.test_client(), "vol", "volunteer-pass-1").status_code == 401
    # And the other way round: an HQ role on a node reaches none of the node's API.
    node = app.extensions["shelter"]
    admin_token = "sht_old-admin-token"
    node.store.append("token_created", {
        "token_id": new_id(), "role": "admin", "label": "",
        "token_hash": hashlib.sha256(admin_token.encode()).hexdigest()})
    assert app.test_client().get("/api/v1/headcount", headers={
        "Authorization": f"Bearer {admin_token}"}).status_code == 401


# --- sessions live on the server -----------------------------------------------------------

def test_a_cookie_replayed_after_logout_is_worth_nothing(app):
    add_user(app.extensions["shelter"].store, "boss", "boss-pass-1", "manager")
    client = app.test_client()
    assert sign_in(client, "boss", "boss-pass-1").status_code == 303
    stolen = client.get_cookie(COOKIE).value
    assert client.get("/staff").status_code == 200
    assert client.post("/staff/logout", data={"csrf": csrf_of(client, "/staff")}
                       ).status_code == 303
    thief = app.test_client()
    thief.set_cookie(COOKIE, stolen)
    page = thief.get("/staff")
    assert page.status_code == 302 and "/staff/login" in page.headers["Location"]
    assert thief.get("/api/v1/headcount").status_code == 401
    ended = app.extensions["shelter"].db.execute(
        "SELECT ended_at FROM staff_sessions WHERE username = 'boss'").fetchone()[0]
    assert ended is not None


def test_the_cookie_carries_a_random_id_the_database_only_its_hash(app):
    add_user(app.extensions["shelter"].store, "boss", "boss-pass-1", "manager")
    client = app.test_client()
    sign_in(client, "boss", "boss-pass-1")
    with client.session_transaction() as session:
        sid = session["sid"]
        assert "user" not in session and "boss" not in str(dict(session))
    stored = [r[0] for r in app.extensions["shelter"].db.execute(
        "SELECT session_hash FROM staff_sessions")]
    assert len(sid) >= 40 and sid not in stored
    assert stored == [hashlib.sha256(sid.encode()).hexdigest()]


def test_disabling_ends_open_sessions_for_good(app):
    node = app.extensions["shelter"]
    add_user(node.store, "leaver", "leaver-pass-1", "volunteer")
    leaver = app.test_client()
    assert sign_in(leaver, "leaver", "leaver-pass-1").status_code == 303
    assert leaver.get("/desk").status_code == 200
    set_user_disabled(node.store, "leaver", True)
    assert leaver.get("/desk").status_code == 302
    # Enabling the account again does not bring the old session back.
    set_user_disabled(node.store, "leaver", False)
    assert leaver.get("/desk").status_code == 302
    assert node.db.execute("SELECT count(*) FROM staff_sessions WHERE username = 'leaver' "
                           "AND ended_at IS NULL").fetchone()[0] == 0
    assert sign_in(leaver, "leaver", "leaver-pass-1").status_code == 303
    assert leaver.get("/desk").status_code == 200


def test_sessions_end_when_idle_or_too_old_and_are_touched_once_a_minute(app, clock):
    node = app.extensions["shelter"]
    add_user(node.store, "vol", "volunteer-pass-1", "volunteer")
    client = app.test_client()
    sign_in(client, "vol", "volunteer-pass-1")

    def last_seen():
        return node.db.execute("SELECT last_seen_at FROM staff_sessions").fetchone()[0]
    first = last_seen()
    clock(30)
    assert client.get("/desk").status_code == 200 and last_seen() == first  # no write
    clock(31)
    assert client.get("/desk").status_code == 200 and last_seen() > first
    for _ in range(3):  # busy, never idle for 4 hours, but 14 hours is a whole shift
        clock(3.9 * 3600)
        assert client.get("/desk").status_code == 200
    clock(3 * 3600)
    assert client.get("/desk").status_code == 302
    idle = app.test_client()
    sign_in(idle, "vol", "volunteer-pass-1")
    clock(4 * 3600 + 1)
    assert idle.get("/desk").status_code == 302


def test_a_session_page_still_proves_itself_with_its_csrf_token(app):
    add_user(app.extensions["shelter"].store, "vol", "volunteer-pass-1", "volunteer")
    client = app.test_client()
    sign_in(client, "vol", "volunteer-pass-1")
    body = {"code": "SHC1.nothing", "action": "check_in"}
    refused = client.post("/api/v1/scans", json=body)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "csrf")
    token = csrf_of(client, "/staff")  # the same token the pages put in their forms
    answered = client.post("/api/v1/scans", json=body, headers={"X-CSRF-Token": token})
    assert answered.status_code not in (401, 403), answered.get_data(as_text=True)


# --- throttling ------------------------------------------------------------------------------

def test_a_stranger_guessing_cannot_lock_the_owner_out(app):
    add_user(app.extensions["shelter"].store, "boss", "boss-pass-1", "manager")
    stranger = client_from(app, "10.0.0.66")
    answers = [sign_in(stranger, "boss", f"guess-{n}").status_code for n in range(20)]
    assert answers[:5] == [401] * 5 and set(answers[5:]) == {429}
    # The stranger's address waits even with the right password: no way to tell a hit.
    assert sign_in(stranger, "boss", "boss-pass-1").status_code == 429
    # Twenty more wrong guesses from ten other addresses, two each (none of them throttled).
    for n in range(20):
        assert sign_in(client_from(app, f"10.0.1.{n // 2}"), "boss", "nope-nope").status_code \
            == 401
    owner = client_from(app, "10.0.0.5")
    assert sign_in(owner, "boss", "boss-pass-1").status_code == 303
    assert owner.get("/staff").status_code == 200
    failed = app.extensions["shelter"].db.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'login_failed' AND actor = 'boss'"
    ).fetchone()[0]
    assert failed == 25  # every counted failure is audited; refused ones as login_refused


def test_the_wait_says_how_long_and_doubles(app, clock):
    client = client_from(app, "10.0.0.7")
    for _ in range(5):
        assert sign_in(client, "nobody", "wrong-wrong").status_code == 401
    refused = sign_in(client, "nobody", "wrong-wrong")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert "Too many attempts. Try again in 5 seconds." in refused.get_data(as_text=True)
    clock(4.5)
    assert "Try again in 1 second." in sign_in(client, "nobody", "x").get_data(as_text=True)
    clock(0.5)
    assert sign_in(client, "nobody", "wrong-wrong").status_code == 401  # waited: one more try
    japanese = sign_in(client, "nobody", "wrong-wrong", lang="ja")
    assert japanese.status_code == 429
    assert "10 秒後にもう一度お試しください" in japanese.get_data(as_text=True)
    clock(10)
    sign_in(client, "nobody", "wrong-wrong")
    assert sign_in(client, "nobody", "x").headers["Retry-After"] == "20"
    # A quarter of an hour without trying, and the count starts again.
    clock(15 * 60 + 1)
    assert sign_in(client, "nobody", "wrong-wrong").status_code == 401


def test_one_address_trying_many_names_is_slowed_too(app, clock):
    add_user(app.extensions["shelter"].store, "boss", "boss-pass-1", "manager")
    sprayer = client_from(app, "10.0.0.99")
    for n in range(20):
        assert sign_in(sprayer, f"user{n}", "password-guess").status_code == 401
    refused = sign_in(sprayer, "boss", "boss-pass-1")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert sign_in(client_from(app, "10.0.0.5"), "boss", "boss-pass-1").status_code == 303


def test_a_right_password_resets_the_count_for_its_own_address(app, clock):
    add_user(app.extensions["shelter"].store, "vol", "volunteer-pass-1", "volunteer")
    client = client_from(app, "10.0.0.8")
    for _ in range(4):
        assert sign_in(client, "vol", "typo-typo").status_code == 401
    assert sign_in(client, "vol", "volunteer-pass-1").status_code == 303
    for _ in range(4):  # a later shift's typos start from nothing
        assert sign_in(client, "vol", "typo-typo").status_code == 401


def test_guesses_sent_at_once_are_counted_one_after_another(app):
    node = app.extensions["shelter"]
    allowed, refused = [], []
    start = threading.Barrier(16)

    def guess() -> None:
        store = node.store  # each thread its own connection, as in the server
        start.wait()
        try:
            allowed.append(signin.begin_attempt(store, "boss", "10.0.0.66"))
        except signin.TooManyAttempts:
            refused.append(1)

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(allowed) == signin.FREE_PER_PAIR and len(refused) == 16 - signin.FREE_PER_PAIR


def test_the_wait_grows_to_a_cap():
    waits = [signin.wait_after(n, 5) for n in range(4, 14)]
    assert waits == [0, 5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert signin.wait_after(10**6, 20) == signin.MAX_WAIT_SECONDS


# --- common passwords ------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["password", "PASSWORD", "Password123!", "12345678",
                                      "qwertyui", "iloveyou", "shelter1", "asdfghjkl",
                                      "87654321", "abcabcabc", "zzzzzzzz", "1q2w3e4r5t",
                                      "tanaka-2026", "Tanaka2026"])
def test_common_passwords_are_refused(app, password):
    with pytest.raises(ValueError, match="This password is too common."):
        add_user(app.extensions["shelter"].store, "tanaka", password, "volunteer")


def test_the_users_page_and_the_cli_refuse_a_common_password(app, tmp_path):
    node = app.extensions["shelter"]
    add_user(node.store, "boss", "boss-pass-1", "manager")
    client = app.test_client()
    sign_in(client, "boss", "boss-pass-1")
    form = {"csrf": csrf_of(client, "/staff/users"), "username": "desk1",
            "password": "Welcome123", "role": "volunteer"}
    page = client.post("/staff/users?lang=en", data=form)
    assert page.status_code == 400 and "This password is too common." in page.get_data(
        as_text=True)
    page = client.post("/staff/users?lang=ja", data={**form, "password": "desk1desk1"})
    assert page.status_code == 400 and "よく使われている" in page.get_data(as_text=True)
    assert node.db.execute("SELECT count(*) FROM users WHERE username = 'desk1'"
                           ).fetchone()[0] == 0
    assert client.post("/staff/users", data={**form, "password": "desk-pass-1"}
                       ).status_code == 303
    refused = run_cli("user", "add", "--data", str(tmp_path / "n"), "--username", "ito",
                      "--role", "volunteer", "--password", "iloveyou", check=False)
    assert refused.returncode == 1 and "This password is too common." in refused.stderr


def test_a_live_screen_learns_of_a_logout(app, monkeypatch):
    """Long-lived sockets (the desk's and HQ's live screens) ask again who holds them, so
    a logout or a disabled account closes them too."""
    from flask import session

    from shelter.domain.accounts import add_user
    from shelter.domain.signin import end_session, start_session
    from shelter.web import base

    node = app.extensions["shelter"]
    add_user(node.store, "desk1", "desk-pass-long-1", "volunteer")
    sid = start_session(node.store, "desk1")
    monkeypatch.setattr(base, "RECHECK_SECONDS", 0.0)
    with app.test_request_context("/desk/live"):
        session["sid"] = sid
        allowed = base.Recheck("volunteer")
        assert allowed.still_allowed()
        end_session(node.store, sid)
        assert not allowed.still_allowed()


def test_a_refused_sign_in_keeps_the_name_typed(app):
    from shelter.domain.accounts import add_user

    add_user(app.extensions["shelter"].store, "desk2", "desk-pass-long-2", "volunteer")
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    answer = client.post("/staff/login", data={"csrf": csrf, "username": "desk2",
                                               "password": "not-it-at-all"})
    assert answer.status_code == 401
    assert 'value="desk2"' in answer.get_data(as_text=True)


def test_a_clock_set_back_locks_nobody_out(app, monkeypatch):
    """Failures recorded while the clock ran two days ahead must not make anyone wait two
    days once it is set right; no wait is ever longer than the longest one."""
    from datetime import timedelta

    from shelter.domain import signin

    store = app.extensions["shelter"].store
    real = signin.now
    monkeypatch.setattr(signin, "now", lambda: real() + timedelta(days=2))
    for _ in range(25):
        try:
            signin.end_attempt(store, signin.begin_attempt(store, "boss", "10.0.0.5"), False)
        except signin.TooManyAttempts:
            break
    monkeypatch.setattr(signin, "now", real)
    signin.end_attempt(store, signin.begin_attempt(store, "boss", "10.0.0.5"), True)
    assert signin._seconds_to_wait(store.db, "boss", "10.0.0.5",
                                   real() + timedelta(days=1)) <= signin.MAX_WAIT_SECONDS
