"""One scan at the door, in a real Chromium on a 768×1024 tablet: the household code a family
made on /prepare and printed, held to the desk's (fake) camera, shows the four of them; one
tap checks all four in and their cards print (the PDF's QR codes are their cards). The same
code at a second shelter admits them there, and HQ ends with one household of four, with
both shelters' arrivals. The desk's preview and the kiosk's code page are accessible (axe)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shelter.core.node import NodeContext
from shelter.domain import household_code
from shelter.domain.accounts import add_user, create_token

from .camera import card_from_page, write_y4m
from .conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    api,
    decode_png,
    enrolled_node,
    render_pdf,
    sign_in,
    start_hq,
    wait_until,
)
from .test_browser_desk import assert_accessible, wait_js
from .test_desk_household import family_of_four

SHELTER_A, SHELTER_B = "E2710000004141", "E2710000004242"
# A keyboard-wedge scanner: every character's key, then Enter, all at once.
SCANNER = """(text) => { for (const key of [...text, "Enter"]) document.body.dispatchEvent(
    new KeyboardEvent("keydown", {key: key, bubbles: true, cancelable: true})); }"""


@pytest.fixture(scope="module")
def shelters(tmp_path_factory):
    hq = start_hq(tmp_path_factory.mktemp("arrival-hq"))
    folders = {s: tmp_path_factory.mktemp(s) for s in (SHELTER_A, SHELTER_B)}
    started = []

    def start(shelter_id: str):
        node = enrolled_node(hq, folders[shelter_id], shelter_id, "--shelter-name",
                             f"避難所{shelter_id[-2:]}")
        started.append(node)
        ctx = NodeContext(node.data)  # as `shelter token create` / `user add` would
        try:
            node.volunteer = create_token(ctx.store, "volunteer")
            if shelter_id == SHELTER_A:
                for user, role in (("desk", "volunteer"), ("entrance", "kiosk")):
                    add_user(ctx.store, user, f"{user}-pass-1", role)
        finally:
            ctx.db.conn.close()
        return node

    try:
        with ThreadPoolExecutor(2) as pool:  # two shelters start side by side
            a, b = pool.map(start, (SHELTER_A, SHELTER_B))
        yield hq, a, b
    finally:
        for node in started:
            node.stop()
        hq.stop()


# The family's details typed into /prepare's form at once (the phone's own walk through the
# form is tests/test_browser_prepare.py): its fields, then the form sent.
FILL_PREPARE = """(family) => {
  const form = document.querySelector("form input[name=count]").form;
  const put = (name, value) => {
    const choice = form.querySelector(`input[type=radio][name="${name}"][value="${value}"]`);
    if (choice) { choice.checked = true; return; }
    let field = form.querySelector(`[name="${name}"]:not([type=checkbox])`);
    if (!field) {
      field = document.createElement("input"); field.type = "hidden"; field.name = name;
      form.appendChild(field);
    }
    field.value = value;
  };
  for (const [name, value] of Object.entries(family)) {
    if (Array.isArray(value)) {
      form.querySelectorAll(`[name="${name}"]`).forEach((box) => box.remove());
      value.forEach((v) => { const box = document.createElement("input");
        box.type = "hidden"; box.name = name; box.value = v; form.appendChild(box); });
    } else put(name, value);
  }
  form.querySelectorAll("[name=action]").forEach((b) => b.removeAttribute("name"));
  HTMLFormElement.prototype.submit.call(form);  // (a field may be named "submit")
}"""


@pytest.fixture(scope="module")
def printed(shelters, browser, tmp_path_factory):
    """The family of four makes its code on shelter A's /prepare on a phone and prints it:
    the code, and the printed page's QR as they hold it up."""
    _, a, _ = shelters
    clean = family_of_four()
    fields = {"count": str(len(clean["members"])), "language": "ja", "consent": "relatives",
              "whereabouts": "shelter", "address": clean["address"], "pets": "犬 1匹",
              "postal_code": clean["postal_code"], "phone": clean["phone"]}
    for i, m in enumerate(clean["members"]):
        year, month, day = m["birth_date"].split("-")
        fields.update({f"m{i}-{f}": m[f] for f in (
            "family_name", "given_name", "family_name_kana", "given_name_kana", "sex",
            "allergies", "medication") if m.get(f)})
        fields.update({f"m{i}-birth_year": year, f"m{i}-birth_month": month,
                       f"m{i}-birth_day": day, f"m{i}-needs": m["needs"]})
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, locale="ja-JP")
    page = phone.new_page()
    page.goto(f"{a.http}/prepare")
    with page.expect_navigation():
        page.evaluate(FILL_PREPARE, fields)
    page.wait_for_selector("#made #qr")
    page.emulate_media(media="print")
    sheet = render_pdf(page.pdf(format="A4"), tmp_path_factory.mktemp("printed"))[0]
    phone.close()
    [code] = decode_png(sheet)
    return code, card_from_page(sheet)


@pytest.fixture(scope="module")
def code(printed) -> str:
    return printed[0]


@pytest.fixture(scope="module")
def camera_browser(printed, tmp_path_factory, playwright_driver):
    """Chromium whose camera sees the family's printed household code."""
    video = write_y4m(printed[1], tmp_path_factory.mktemp("camera") / "family.y4m")
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required"])
    yield browser
    browser.close()


def tablet(browser, node, user: str, landing: str):
    context = browser.new_context(viewport={"width": 768, "height": 1024},
                                  ignore_https_errors=True, locale="ja-JP", has_touch=True,
                                  permissions=["camera"])
    page = context.new_page()
    sign_in(page, node.https, user, f"{user}-pass-1", landing)
    return page


def present(node) -> int:
    return api(node, "GET", "/api/v1/headcount", node.volunteer).json()["present"]


def card_codes(node, household_id: str) -> set[str]:
    ctx = NodeContext(node.data)
    try:
        return {r[0] for r in ctx.db.execute(
            "SELECT card_code FROM persons WHERE household_id = ?", [household_id])}
    finally:
        ctx.db.conn.close()


def test_one_scan_and_one_tap_check_a_family_in_here_and_at_a_second_shelter(
        shelters, camera_browser, code, tmp_path):
    hq, a, b = shelters
    household_id = household_code.read(code).household_id
    page = tablet(camera_browser, a, "desk", "/desk")
    page.click("#camera-toggle")
    wait_js(page, "document.querySelector('#result.kind-household') !== null", 20)
    result = page.locator("#result")
    shown = result.inner_text()
    assert page.locator("#result .household-members li").count() == 4
    assert "4人" in shown and "山田 太郎" in shown and "この内容でよろしいですか？" in shown
    assert "全員を登録して入所" in page.locator("#household-admit").inner_text()
    assert present(a) == 0  # shown, not admitted
    assert_accessible(page)
    page.click("#household-admit")
    wait_js(page, "document.querySelector('#result .household-done') !== null")
    assert "4人 入所しました" in result.inner_text()
    assert present(a) == 4
    page.click("#camera-toggle")  # camera off

    href = page.locator("a#print-cards").get_attribute("href")
    assert href == f"/api/v1/households/{household_id}/cards.pdf"
    pdf = page.request.get(f"{a.https}{href}")
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    decoded = set()
    for png in render_pdf(pdf.body(), tmp_path):
        decoded.update(decode_png(png))
    assert decoded == card_codes(a, household_id) and len(decoded) == 4
    page.context.close()

    # The kiosk's code page, for a tablet signed in with the kiosk account.
    kiosk = tablet(camera_browser, a, "entrance", "/register/code")
    assert kiosk.locator("#household-code").count() == 1
    assert_accessible(kiosk)
    kiosk.context.close()

    # The same family walks on to shelter B, and its desk scans the same code.
    at_b = api(b, "POST", "/api/v1/scans", b.volunteer,
               json={"code": code, "action": "check_in"})
    assert at_b.status_code == 200, at_b.text
    answer = at_b.json()
    assert answer["household_id"] == household_id and len(answer["members"]) == 4
    assert {m["presence"]["status"] for m in answer["members"]} == {"present"}
    assert present(b) == 4

    def hq_has_them():
        ctx = NodeContext(hq.data, role="hq")
        try:
            db = ctx.db
            households = db.execute("SELECT count(*) FROM households WHERE household_id = ?",
                                    [household_id]).fetchone()[0]
            persons = db.execute("SELECT count(*) FROM persons WHERE household_id = ?",
                                 [household_id]).fetchone()[0]
            arrivals = {r[0] for r in db.execute(
                "SELECT DISTINCT l.shelter_id FROM presence_log l JOIN persons p "
                "ON p.person_id = l.person_id WHERE p.household_id = ? "
                "AND l.action = 'check_in'", [household_id])}
            where = {r[0] for r in db.execute(
                "SELECT pr.shelter_id FROM presence pr JOIN persons p "
                "ON p.person_id = pr.person_id WHERE p.household_id = ?", [household_id])}
        finally:
            ctx.db.conn.close()
        return (households, persons, arrivals, where) == (
            1, 4, {SHELTER_A, SHELTER_B}, {SHELTER_B})

    wait_until(hq_has_them, timeout=30, what="HQ: one household of four, in at A then B")


def test_a_kiosk_tablet_reads_the_code_with_its_camera(shelters, camera_browser, code):
    """The kiosk's camera reads the code and shows the family; one tap, and their cards."""
    _, a, _ = shelters
    page = tablet(camera_browser, a, "entrance", "/register/code")
    page.click("#camera-toggle")
    page.wait_for_selector("#household-admit", timeout=20_000)
    assert "この内容でよろしいですか？" in page.locator("#result").inner_text()
    assert_accessible(page)
    page.click("#household-admit")
    page.wait_for_url("**/register/cards")
    assert "4人全員" in page.locator(".household-done").inner_text()
    assert page.locator("figure.card").count() == 4
    page.context.close()


def test_the_whole_household_in_one_tap_and_automatic_mode_after_a_check_out(
        shelters, camera_browser, code):
    _, a, _ = shelters
    admitted = api(a, "POST", "/api/v1/scans", a.volunteer,  # in, if not yet
                   json={"code": code, "action": "check_in"}).json()
    first = admitted["members"][0]["code"]
    page = tablet(camera_browser, a, "desk", "/desk")
    page.check("input[name=action][value=check_out]")
    page.fill("#code", first)
    page.press("#code", "Enter")
    wait_js(page, "window.shelterDesk.results >= 1")
    assert "kind-check_out" in page.locator("#result").get_attribute("class")
    # Back in automatic mode: the next card is not checked out by a mode left selected.
    assert page.is_checked("input[name=action][value=auto]")
    button = page.locator("#result button.household-all")
    assert button.get_attribute("value") == "check_out" and "4人" in button.inner_text()
    with page.expect_request(lambda r: r.url.endswith("/api/v1/scans")) as sent:
        button.click()
    assert sent.value.post_data_json["household"] is True
    assert sent.value.post_data_json["code"] == first
    wait_js(page, "document.querySelector('#result .household-done') !== null")
    assert "4人 退所しました" in page.locator("#result").inner_text()
    assert present(a) == 0
    # A handheld scanner types the household code (focus anywhere): the family, the tap.
    # (at a scanner's pace: Playwright's own keystrokes, on a busy machine, come slower
    # than the desk's 100 ms between a scanner's keys)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate(SCANNER, code)
    page.wait_for_selector("#result.kind-household #household-admit")
    assert "全員入所" in page.locator("#household-admit").inner_text()
    page.click("#household-admit")
    wait_js(page, "document.querySelector('#result .household-done') !== null")
    assert present(a) == 4
    page.context.close()
