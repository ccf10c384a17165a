"""Furigana from the IME (static/autokana.js) on the kiosk form and on /prepare, in a real
Chromium against a real node. The IME is driven through the DevTools Protocol:
Input.imeSetComposition (the composing text, as the IME shows it while a reading is typed and
converted) fires compositionstart/compositionupdate and input events with isComposing, and
Input.insertText then commits it and fires compositionend, as Chromium does for a real IME."""

from __future__ import annotations

import pytest

from .conftest import start_node, wait_until


@pytest.fixture(scope="module")
def kana_node(tmp_path_factory):
    server = start_node(tmp_path_factory.mktemp("autokana-node"), "--shelter-id",
                        "E2710000005555", "--shelter-name", "テスト避難所")
    yield server
    server.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="ja-JP",
                                  has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def compose(page, cdp, selector: str, reading: str, text: str, at_end: bool = True) -> None:
    """Type ``reading`` with a Japanese IME (romaji first, as it is keyed), then convert it
    to ``text`` and commit it (after what the field holds, unless ``at_end`` is False: then
    where the cursor or the selection is)."""
    page.focus(selector)
    if at_end:
        page.keyboard.press("End")
    steps = []
    for k in range(1, len(reading) + 1):
        steps += [reading[:k - 1] + "k", reading[:k]]  # "やm" before "やま": not a reading
    for step in steps + [text]:
        cdp.send("Input.imeSetComposition",
                 {"text": step, "selectionStart": len(step), "selectionEnd": len(step)})
    cdp.send("Input.insertText", {"text": text})


def value_is(page, selector: str, want: str) -> None:
    wait_until(lambda: page.input_value(selector) == want, timeout=5,
               what=f"{selector} == {want!r} (it is {page.input_value(selector)!r})")


def test_the_reading_typed_into_the_ime_fills_the_furigana(kana_node, page):
    cdp = page.context.new_cdp_session(page)
    page.goto(f"{kana_node.http}/kiosk?lang=ja")
    # 山田 as two compositions in a row: やま → 山, then だ → 田.
    compose(page, cdp, "#m0-family_name", "やま", "山")
    value_is(page, "#m0-family_name_kana", "やま")
    compose(page, cdp, "#m0-family_name", "だ", "田")
    assert page.input_value("#m0-family_name") == "山田"
    value_is(page, "#m0-family_name_kana", "やまだ")
    compose(page, cdp, "#m0-given_name", "たろう", "太郎")
    value_is(page, "#m0-given_name_kana", "たろう")
    # The name cleared: so is what was filled for it; composed in katakana: hiragana.
    page.fill("#m0-given_name", "")
    value_is(page, "#m0-given_name_kana", "")
    compose(page, cdp, "#m0-given_name", "タロウ", "太郎")
    value_is(page, "#m0-given_name_kana", "たろう")

    page.click("#add-person")  # the form copies the family name and its kana
    page.locator("#m1-given_name").wait_for()
    assert page.input_value("#m1-family_name_kana") == "やまだ"
    compose(page, cdp, "#m1-given_name", "はなこ", "花子")
    value_is(page, "#m1-given_name_kana", "はなこ")
    assert page.input_value("#m1-family_name_kana") == "やまだ"
    # Her own family name typed over the copy: its kana goes with it.
    page.click("#m1-family_name")  # selects the copy (kiosk.js)
    compose(page, cdp, "#m1-family_name", "すずき", "鈴木", at_end=False)
    assert page.input_value("#m1-family_name") == "鈴木"
    value_is(page, "#m1-family_name_kana", "すずき")

    # What the person typed in a kana box is never overwritten, before or after a fill.
    page.click("#add-person")
    page.locator("#m2-given_name").wait_for()
    page.click("#m2-given_name_kana")
    page.keyboard.type("ケン")
    compose(page, cdp, "#m2-given_name", "けんいち", "健一")
    assert page.input_value("#m2-given_name_kana") == "ケン"
    # The first person's kana emptied by hand, then the family name typed anew: the fill
    # goes to the first person's box, and the copies that follow it (kiosk.js) take it.
    page.fill("#m0-family_name_kana", "")
    page.click("#m0-family_name")
    page.keyboard.press("Control+A")
    compose(page, cdp, "#m0-family_name", "やまもと", "山本", at_end=False)
    value_is(page, "#m0-family_name_kana", "やまもと")
    assert page.input_value("#m2-family_name") == "山本"
    value_is(page, "#m2-family_name_kana", "やまもと")
    assert page.input_value("#m1-family_name_kana") == "すずき"  # her own
    page.fill("#m0-family_name_kana", "やまもと ")  # corrected by hand: it is theirs now
    compose(page, cdp, "#m0-family_name", "さん", "さん")
    assert page.input_value("#m0-family_name_kana") == "やまもと "


def test_prepare_fills_the_furigana_and_no_ime_fills_nothing(kana_node, page):
    cdp = page.context.new_cdp_session(page)
    page.goto(f"{kana_node.http}/prepare?lang=ja")
    compose(page, cdp, "#m0-family_name", "さとう", "佐藤")
    value_is(page, "#m0-family_name_kana", "さとう")
    compose(page, cdp, "#m0-given_name", "さくら", "さくら")  # a name written in kana
    value_is(page, "#m0-given_name_kana", "さくら")
    page.fill("#m0-family_name", "")
    page.fill("#m0-given_name", "")
    value_is(page, "#m0-family_name_kana", "")
    value_is(page, "#m0-given_name_kana", "")
    # Plain typing (no IME), and a phone keyboard composing English words: nothing.
    page.click("#m0-family_name")
    page.keyboard.type("Smith")
    compose(page, cdp, "#m0-given_name", "", "Anna")
    cdp.send("Input.imeSetComposition", {"text": "Lee", "selectionStart": 3, "selectionEnd": 3})
    cdp.send("Input.insertText", {"text": "Lee"})
    assert page.input_value("#m0-given_name") == "AnnaLee"
    page.click("#m0-family_name_kana")  # (every event is handled by now)
    assert page.input_value("#m0-family_name_kana") == ""
    assert page.input_value("#m0-given_name_kana") == ""
    # A reading composed after English text: its kana is unknown, so nothing either.
    compose(page, cdp, "#m0-family_name", "やま", "山")
    assert page.input_value("#m0-family_name") == "Smith山"
    assert page.input_value("#m0-family_name_kana") == ""
