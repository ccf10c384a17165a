"""HQ's large map in a real Chromium at 1280×800, over a real HQ holding the real GSI
registry with its derived outlines: the map takes the screen's height, every municipality
is outlined and most are named without one name over another, a click on an outline zooms
to it, the dots follow the live socket, and axe finds nothing serious."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from shelter.core.node import NodeContext
from shelter.domain import accounts
from shelter.hq import outlines
from shelter.hq.shelters import import_file

from .conftest import sign_in, start_hq
from .test_browser_desk import assert_accessible, wait_js
from .test_hq_registry import GSI

WIDTH, HEIGHT = 1280, 800


@pytest.fixture(scope="module")
def page(tmp_path_factory, browser):
    data = tmp_path_factory.mktemp("map-browser") / "hq"
    hq = NodeContext(data, role="hq")
    import_file(hq.store, GSI)
    outlines.refresh(hq.store)
    accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
    server = start_hq(data)
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT},
                                  ignore_https_errors=True, locale="ja-JP")
    page = context.new_page()
    sign_in(page, server.url, "op", "operator-pass-1", "/hq")
    page.base = server.url
    yield page
    context.close()
    server.stop()


def assert_accessible_but_dots(page) -> None:
    """axe, less the prefecture's 2,975 dots (20 s of axe on a loaded machine): the same
    markup is checked in full on the zoomed view."""
    results = Axe().run(page, context={"exclude": [["svg.map g.dots"]]})
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad


def box(page, selector: str) -> dict:
    return page.evaluate(f"(() => {{ const r = document.querySelector({selector!r})"
                         ".getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, "
                         "height: r.height}; })()")


LABEL_BOXES = """[...document.querySelectorAll('svg.map text.place')].map(t => {
  const r = t.getBoundingClientRect();
  return [t.textContent, r.left, r.top, r.right, r.bottom]; })"""


def test_the_large_map_is_outlined_named_zooms_and_follows_live(page):
    page.goto(f"{page.base}/hq/map")
    drawn = box(page, "svg.map")
    assert drawn["height"] >= 0.7 * HEIGHT and drawn["y"] + drawn["height"] <= HEIGHT
    assert drawn["width"] * drawn["height"] >= 250_000  # the old map's box was ~390×560
    assert page.locator("svg.map path.outline").count() == 43
    labels = page.evaluate(LABEL_BOXES)
    assert len(labels) >= 38, [name for name, *_ in labels]
    for i, (a, *ra) in enumerate(labels):  # no name over another
        for b, *rb in labels[i + 1:]:
            apart = ra[2] <= rb[0] or rb[2] <= ra[0] or ra[3] <= rb[1] or rb[3] <= ra[1]
            assert apart, (a, b)
    wait_js(page, "window.shelterMap && window.shelterMap.messages >= 1", 20)
    assert page.locator("svg.map circle.dot.status-standby").count() == 2975
    assert_accessible_but_dots(page)

    # A click on 岸和田市's outline (where its name is, the name letting clicks through)
    # zooms to it: its outline then fills the view.
    before = box(page, 'a[data-municipality="岸和田市"] path')
    name = next(r for r in labels if r[0] == "岸和田市")
    spots = [((name[1] + name[3]) / 2 + dx, (name[2] + name[4]) / 2 + dy)
             for dx in (0, -12, 12, -24, 24) for dy in (0, -10, 10)]
    spot = next(s for s in spots if page.evaluate(
        f"(() => {{ const e = document.elementFromPoint({s[0]}, {s[1]}); return !!e && "
        "e.matches('path.outline') && "
        "e.closest('a').dataset.municipality === '岸和田市'; })()"))
    page.mouse.click(*spot)
    page.wait_for_url("**/hq/map?m=*")
    assert page.locator("svg.map").get_attribute("data-focus") == "岸和田市"
    after = box(page, 'a[data-municipality="岸和田市"] path')
    view = box(page, "svg.map")
    assert after["height"] > 4 * before["height"]
    assert after["height"] >= 0.8 * view["height"] or after["width"] >= 0.8 * view["width"]
    assert page.locator("svg.map text.place.focus").text_content() == "岸和田市"
    assert page.locator("#zoom-to").input_value() == "岸和田市"
    assert_accessible(page)

    # Back to the whole prefecture from the list, and the dashboard gives the map a panel.
    page.select_option("#zoom-to", "")
    page.click(".zoom button[type=submit]")
    page.wait_for_url("**/hq/map?m=")
    assert page.locator("svg.map").get_attribute("data-focus") == ""
    page.goto(f"{page.base}/hq")
    panel = box(page, ".map-large svg.map")
    assert panel["height"] >= 0.7 * HEIGHT and panel["width"] >= 400
    assert page.locator(".map-large svg.map path.outline").count() == 43
