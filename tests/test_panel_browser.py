"""The front panel driven in a real headless browser (Debian's Chromium through Playwright,
using that system browser): load the page, press START twice with the mouse, see the
treatment screen, lift a hand and see PAUSED, inject a sensor fault and see the fault screen,
clear it from the keyboard, save the record and replay it. A screenshot of each step is kept
in out/panel/. The display is read back from the canvas's pixels and must equal the SSD1306
model's own rendering of the same frame, pixel for pixel."""
import os
import shutil
import subprocess
import tempfile

import pytest

from ionto.panel import PanelServer
from ionto.simctl import VirtualUnit

from conftest import ROOT, run_mpy

pytestmark = pytest.mark.slow

OUT = ROOT / "out" / "panel"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
TREATING = ("CONTACT", "RAMP UP", "TREAT")


def _chromium():
    """Debian's Chromium, installed with apt-get when missing (we may be root on a fresh
    machine); a clear skip only when that is impossible."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, timeout=900)
        if os.path.exists(CHROMIUM):
            return CHROMIUM
    pytest.skip("the panel's browser tests need Debian's chromium at %s; it is missing and could not be "
                "installed (run as root: apt-get install chromium)" % CHROMIUM)


@pytest.fixture(scope="module")
def glyphs():
    """The firmware's 8x8 font (framebuf's, in the MicroPython unix port) as {bitmap: char}."""
    r = run_mpy("import framebuf\nb = bytearray(8)\nf = framebuf.FrameBuffer(b, 8, 8, framebuf.MONO_VLSB)\n"
                "for c in range(32, 127):\n    f.fill(0)\n    f.text(chr(c), 0, 0, 1)\n"
                "    print(c, bytes(b).hex())\n", path=())
    assert r.returncode == 0, r.stderr
    out = {}
    toks = r.stdout.split()
    for c, hx in zip(toks[::2], toks[1::2]):
        b = bytes.fromhex(hx)
        rows = tuple(tuple((b[x] >> y) & 1 for x in range(8)) for y in range(8))
        out.setdefault(rows, chr(int(c)))
    return out


def screen_text(bits, glyphs):
    """64 lines of '#'/'.' -> 8 lines of text (inverted lines read as their text)."""
    lines = []
    for row in range(8):
        s = ""
        for col in range(16):
            cell = tuple(tuple(1 if bits[row * 8 + y][col * 8 + x] == "#" else 0 for x in range(8)) for y in range(8))
            inv = tuple(tuple(1 - v for v in r) for r in cell)
            s += glyphs.get(cell) or glyphs.get(inv) or "?"
        lines.append(s.rstrip())
    return lines


def model_text(hx, flags):
    """What the SSD1306 model's glass shows for a frame and the controller's settings."""
    import ssd1306_model

    d = ssd1306_model.SSD1306()
    d.frame[:] = bytes.fromhex(hx)
    for k, v in flags.items():
        setattr(d, k, v)
    return d.to_text()


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the panel's browser tests need the playwright package (make venv installs it)")
    profile = tempfile.mkdtemp(prefix="ionto-chromium-")
    with sync_playwright() as p:
        # A fresh profile; no network beyond this machine (the page must work offline).
        ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=FLAGS,
                                                   viewport={"width": 1500, "height": 1050}, bypass_csp=True,
                                                   accept_downloads=True)
        ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
                  else route.abort())
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_page_left_open(browser):
    """Every page a test opened is closed after it: the next test's page is the only one."""
    yield
    for p in list(browser.pages):
        p.close()


@pytest.fixture
def panel(fw_bundle):
    # Four times real time, not as fast as possible: the unit's own timeouts (a confirmation
    # expires in 30 s, a pause ends the session after 5 min) must outlast a loaded machine's
    # browser between two clicks, as they outlast a nurse's.
    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=4) as vu:
        srv = PanelServer(vu.state_dir, unplug_usb=True).start()
        try:
            yield vu, srv
        finally:
            srv.stop()


def test_nurse_flow_in_the_browser(browser, panel, glyphs):
    vu, srv = panel
    OUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def display():
        return screen_text(page.evaluate("panel.canvasText()").split("\n"), glyphs)

    def wait_display(pred, what, timeout=60_000):
        page.wait_for_function("() => panel.framesDrawn > 0", timeout=timeout)
        # The page redraws on every new frame; wait for one whose text matches.
        for _ in range(600):
            lines = display()
            if pred(lines):
                return lines
            n = page.evaluate("panel.framesDrawn")
            try:
                page.wait_for_function("n => panel.framesDrawn > n", arg=n, timeout=timeout)
            except Exception:
                break
        shot("failed.png")
        raise AssertionError("the display never showed %s (last: %r)" % (what, lines))

    def shot(name):
        page.screenshot(path=str(OUT / name), full_page=True)

    page.goto(srv.url)
    lines = wait_display(lambda t: t[0].startswith("READY"), "READY")
    assert "hands_feet" in lines[1]
    page.wait_for_function("() => document.body.dataset.state === 'IDLE' && "
                           "!document.body.classList.contains('readonly')")
    shot("1-ready.png")

    # What the page computed is what the canvas shows.
    assert page.evaluate("panel.glassText()") == page.evaluate("panel.canvasText()")

    # START twice with the mouse: the treatment screen.
    start = page.locator('[data-btn="START"]')
    box = start.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_display(lambda t: t[0].startswith("CONFIRM"), "CONFIRM")
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    lines = wait_display(lambda t: t[0].split("  ")[0].strip() in TREATING and t[1].startswith("left"),
                         "the treatment screen")
    page.wait_for_function("() => ['RAMP UP', 'TREAT'].includes(document.body.dataset.state)", timeout=60_000)
    page.wait_for_function("() => panel.beeps > 0")  # the start beep reached the page's buzzer
    shot("2-treatment.png")

    # Lift a hand: PAUSED, current to zero.
    page.click("#tray-left")
    wait_display(lambda t: t[0].startswith("PAUSED"), "PAUSED")
    page.wait_for_function("() => document.body.dataset.contact === 'lifted'")
    shot("3-paused.png")
    assert vu.ctl.state()["true_ua"] < 100  # at most the 50 uA contact test
    page.click("#tray-left")
    wait_display(lambda t: t[0].split("  ")[0].strip() in TREATING, "the treatment screen again")

    # A sensor fault from the training menu: the fault screen, the output off (TRUE current).
    page.select_option("#faultsel", "sensor_silent")
    page.click("#inject")
    # (the firmware draws a page a line at a time, top to bottom: wait for its last line,
    # which on the treatment screen read "STOP  end")
    lines = wait_display(lambda t: t[0] == "SENSOR FAULT" and t[1] == "no reply" and t[2] == "Output cut."
                         and t[7].startswith("STOP  clear"),
                         "the fault screen")
    assert "not answering:" in lines
    page.wait_for_function("() => !document.getElementById('faultlamp').hidden")
    st = vu.ctl.state()
    assert st["true_ua"] == 0 and st["enable"] == 0
    shot("4-fault.png")

    # The keyboard: STOP (x) is refused while the sensor is broken; repaired, STOP clears.
    page.keyboard.press("x")
    page.wait_for_function("() => panel.snap && panel.snap.app && panel.snap.app.refuse === 23")
    page.click("#repair")
    page.wait_for_function("() => panel.snap && panel.snap.board.faults.length === 0")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.body.dataset.state === 'IDLE'")

    # Pixel-exact: the last frame the page drew, through the SSD1306 model's own rendering.
    t, hx, fl = page.evaluate("panel.frame")
    assert page.evaluate("panel.canvasText()") == model_text(hx, fl)

    # The chart has the pause and the fault marked; the dose so far is shown.
    page.wait_for_function("() => panel.events.some(e => e[1] === 'pause') && panel.events.some(e => e[1] === 'fault')")
    assert float(page.inner_text("#r-dose").split()[0]) >= 0

    # Share: save the record, load it back, replay it: at its end the display shows the
    # record's last frame, pixel for pixel.
    with page.expect_download() as dl:
        page.click("#save")
    rec = OUT / "record.json"
    dl.value.save_as(str(rec))
    page.set_input_files("#load", str(rec))
    page.wait_for_function("() => document.body.dataset.replay === '1'")
    page.evaluate("() => { const s = document.getElementById('rslider'); s.value = 1000; "
                  "s.dispatchEvent(new Event('input')); }")
    import json

    t, hx, fl = json.loads(rec.read_text())["frames"][-1]
    assert page.evaluate("panel.canvasText()") == model_text(hx, fl)
    page.evaluate("() => { const s = document.getElementById('rslider'); s.value = 0; "
                  "s.dispatchEvent(new Event('input')); }")
    t, hx, fl = json.loads(rec.read_text())["frames"][0]
    assert page.evaluate("panel.canvasText()") == model_text(hx, fl)  # and at its start, its first
    shot("5-replay.png")
    assert not errors, errors


def test_a_second_tab_watches_until_the_first_closes(browser, panel):
    vu, srv = panel
    a = browser.new_page()
    a.goto(srv.url)
    a.wait_for_function("() => panel.snap && panel.snap.driver === panel.client")
    b = browser.new_page()
    b.goto(srv.url)
    b.wait_for_function("() => panel.snap && document.body.classList.contains('readonly')")
    assert b.is_visible("#take")
    a.close()  # the driver leaves: nobody drives; the watcher may take over
    b.wait_for_function("() => panel.snap && panel.snap.driver === null")
    b.click("#take")
    b.wait_for_function("() => panel.snap && panel.snap.driver === panel.client && "
                        "!document.body.classList.contains('readonly')")
    b.close()


def test_exercises_are_checked_from_the_unit_and_marked_done(browser, panel):
    """The USB exercise and the sensor-fault one, done as a nurse would: the page ticks each
    step from the unit's state, asks its question, and marks the exercise done."""
    vu, srv = panel
    page = browser.new_page()
    page.goto(srv.url)
    page.wait_for_function("() => document.body.dataset.state === 'IDLE' && panel.client === panel.snap.driver")
    page.evaluate("() => localStorage.clear()")

    def step(n):
        page.wait_for_function("n => panel.ex && panel.ex.step >= n", arg=n, timeout=60_000)

    page.click("#ex-usb_cable .ex-start")
    page.wait_for_function("() => panel.snap.board.usb_host_present === true")
    page.keyboard.press("s")
    step(1)
    page.click("#usbtoggle")
    step(2)
    page.keyboard.press("s")
    page.wait_for_function("() => document.body.dataset.state === 'CONFIRM'")
    page.keyboard.press("s")
    page.wait_for_function("() => panel.ex === null && "
                           "document.querySelector('#ex-usb_cable').classList.contains('done')", timeout=60_000)

    page.keyboard.press("x")  # end that treatment: STOP ramps down, STOP again back to READY
    page.wait_for_function("() => document.body.dataset.state === 'STOPPED'", timeout=60_000)
    page.keyboard.press("x")
    page.wait_for_function("() => document.body.dataset.state === 'IDLE'", timeout=60_000)
    page.click("#ex-sensor_fault .ex-start")
    page.wait_for_function("() => panel.ex && panel.ex.name === 'sensor_fault'")
    page.keyboard.press("s")
    page.wait_for_function("() => document.body.dataset.state === 'CONFIRM'")
    page.keyboard.press("s")
    step(2)  # the page injected the fault; the unit is in FAULT with the sensor's words
    assert vu.ctl.state()["true_ua"] == 0
    page.click("#ex-sensor_fault .quiz button:nth-child(1)")  # a wrong answer is refused
    step(2)
    page.click("#ex-sensor_fault .quiz button:nth-child(2)")
    step(3)
    page.keyboard.press("x")
    step(4)
    page.click("#repair")
    page.wait_for_function("() => panel.snap.board.faults.length === 0")
    page.keyboard.press("x")
    page.wait_for_function("() => document.querySelector('#ex-sensor_fault').classList.contains('done')",
                           timeout=60_000)
    page.screenshot(path=str(OUT / "6-exercises.png"), full_page=True)
    assert any(e[1] == "exercise" for e in srv.hub.events)
