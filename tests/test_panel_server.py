"""The front panel's server against a real virtual unit, without a browser: hostile and
malformed requests are refused with one line and change nothing, only the driving page
drives, a page that closes releases what it held, and the record holds trace, frames and
events. (tests/test_panel_browser.py drives the page itself in Chromium.)"""
import http.client
import io
import json
import threading
import time
from pathlib import Path

import pytest

from ionto.cli import build_parser
from ionto.panel import PanelServer
from ionto.simctl import VirtualUnit


@pytest.fixture(scope="module")
def unit(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=0) as vu:
        srv = PanelServer(vu.state_dir, unplug_usb=True).start()
        try:
            yield vu, srv
        finally:
            srv.stop()


def _port(srv):
    return srv.httpd.server_address[1]


def request(srv, method, path, body=None, headers=None, host=None):
    port = _port(srv)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Host": host or "127.0.0.1:%d" % port}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    if method == "POST":
        h.update({"Origin": "http://127.0.0.1:%d" % port, "Content-Type": "application/json"})
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


class SSE:
    """A page's event stream, read in a thread (as a browser tab would hold it open)."""

    def __init__(self, srv):
        self.conn = http.client.HTTPConnection("127.0.0.1", _port(srv), timeout=10)
        self.conn.request("GET", "/events", headers={"Host": "127.0.0.1:%d" % _port(srv)})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.getheader("Content-Type") == "text/event-stream"
        self.msgs = []
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.client = self.wait(lambda m: m["type"] == "hello")["client"]

    def _read(self):
        try:
            for line in self.resp:
                if line.startswith(b"data: "):
                    with self.cond:
                        self.msgs.append(json.loads(line[6:]))
                        self.cond.notify_all()
        except (OSError, ValueError):
            pass

    def wait(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.msgs:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no such message in %.0f s" % timeout)
                self.cond.wait(left)

    def close(self):
        self.resp.close()
        self.conn.close()


def unit_state(s):
    return s.wait(lambda m: m["type"] == "state" and m.get("unit") and m["unit"]["state"] >= 0)


def test_hostile_and_malformed_requests_are_refused_and_change_nothing(unit):
    vu, srv = unit
    s = SSE(srv)
    try:
        unit_state(s)
        # This page drives (a page of an earlier test may not have been let go of yet).
        st, r = request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "take"})
        assert st == 200 and r["driver"] == s.client
        n_events = len(srv.hub.events)
        presses = vu.ctl.eval("board.panel.presses", scope="sim")
        port = _port(srv)
        cases = [
            # (what, request kwargs, status, words in the error)
            ("unknown command", dict(body={"client": s.client, "cmd": "self_destruct"}), 400, "unknown command"),
            ("not an object", dict(body=[1, 2]), 400, "JSON object"),
            ("not JSON", dict(body=b"{press START"), 400, "not JSON"),
            ("a bad button", dict(body={"client": s.client, "cmd": "press", "button": "FIRE"}), 400, "button must be"),
            ("an extra field", dict(body={"client": s.client, "cmd": "press", "button": "START", "x": 1}), 400,
             "unexpected field"),
            ("a bad fault", dict(body={"client": s.client, "cmd": "fault", "id": "rm -rf"}), 400, "id must be"),
            ("a bad speed", dict(body={"client": s.client, "cmd": "accel", "x": 1000}), 400, "accel"),
            ("a huge body", dict(body=b"{" + b" " * 100_000 + b"}"), 413, "at most 4096 bytes"),
            ("another origin", dict(body={"client": s.client, "cmd": "press", "button": "START"},
                                    headers={"Origin": "http://evil.example"}), 403, "another origin"),
            ("no origin", dict(body={"client": s.client, "cmd": "press", "button": "START"},
                               headers={"Origin": None}), 403, "another origin"),
            ("a form post", dict(body=b"cmd=press", headers={"Content-Type": "application/x-www-form-urlencoded"}),
             415, "JSON"),
            ("a rebound host name", dict(body={"client": s.client, "cmd": "press", "button": "START"},
                                         host="evil.example:%d" % port,
                                         headers={"Origin": "http://evil.example:%d" % port}), 403, "answers only"),
            ("an unknown client", dict(body={"client": "c999", "cmd": "press", "button": "START"}), 403,
             "unknown client"),
        ]
        for what, kw, status, words in cases:
            st, r = request(srv, "POST", "/cmd", **kw)
            assert st == status, (what, st, r)
            assert r["ok"] is False and words in r["error"], (what, r)
        st, r = request(srv, "GET", "/", host="evil.example:%d" % port)
        assert st == 403
        st, r = request(srv, "GET", "/etc/passwd")
        assert st == 404 and "no such page" in r["error"]
        st, r = request(srv, "GET", "/../panel.py")
        assert st == 404
        # Nothing reached the unit, nothing was recorded.
        assert vu.ctl.eval("board.panel.presses", scope="sim") == presses
        assert len(srv.hub.events) == n_events
    finally:
        s.close()


def test_one_page_drives_the_others_watch(unit):
    vu, srv = unit
    a = SSE(srv)
    b = SSE(srv)
    try:
        srv.hub.driver = a.client  # as if a had opened first
        st, r = request(srv, "POST", "/cmd", body={"client": b.client, "cmd": "patient", "do": "sweat"})
        assert st == 409 and "Take control" in r["error"]
        st, r = request(srv, "POST", "/cmd", body={"client": b.client, "cmd": "take"})
        assert st == 200 and r["driver"] == b.client
        b.wait(lambda m: m["type"] == "state" and m.get("driver") == b.client)
        st, r = request(srv, "POST", "/cmd", body={"client": a.client, "cmd": "usb", "host_present": False})
        assert st == 409
    finally:
        a.close()
        b.close()


def test_a_closed_page_releases_the_buttons_it_held(unit):
    vu, srv = unit
    s = SSE(srv)
    st, r = request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "take"})
    st, r = request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "hold", "button": "MODE"})
    assert st == 200
    deadline = time.monotonic() + 10
    while not vu.ctl.eval("board.panel.is_down('MODE')", scope="sim"):
        assert time.monotonic() < deadline, "MODE never went down"
    s.close()  # the tab closes with MODE held: no real panel keeps a button pressed by itself
    while vu.ctl.eval("board.panel.is_down('MODE')", scope="sim") or srv.hub.held:
        assert time.monotonic() < deadline + 10, "MODE still held after the page closed"
    assert any("MODE released: the driving page closed" in e[2] for e in srv.hub.events)


def test_record_holds_trace_frames_and_events(unit):
    vu, srv = unit
    s = SSE(srv)
    try:
        request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "take"})
        st, r = request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "patient", "do": "tray", "side": "left",
                                                   "in": False})
        assert st == 200 and r["contact"] == "lifted"
        s.wait(lambda m: m["type"] == "state" and m.get("patient", {}).get("contact") == "lifted")
        request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "patient", "do": "reset"})
        st, rec = request(srv, "GET", "/record")
        assert st == 200 and rec["format"] == "ionto-panel-record"
        assert rec["samples"] and len(rec["samples"][0]) == len(rec["columns"])
        assert rec["frames"] and len(rec["frames"][0][1]) == 2048
        assert any(e[2] == "patient: left out" for e in rec["events"])
        assert rec["period_us"] > 0
    finally:
        s.close()


def test_listening_beyond_loopback_needs_the_flag_and_says_so(fw_bundle, tmp_path):
    srv = PanelServer(tmp_path, host="127.0.0.1")
    out = io.StringIO()
    srv.announce(out)
    assert srv.url.startswith("http://127.0.0.1:") and "WARNING" not in out.getvalue()
    assert srv.httpd.server_address[0] == "127.0.0.1"
    srv.httpd.server_close()
    srv = PanelServer(tmp_path, host="0.0.0.0")
    out = io.StringIO()
    srv.announce(out)
    srv.httpd.server_close()
    assert "WARNING: listening on 0.0.0.0" in out.getvalue()
    cli = build_parser()
    assert cli.parse_args(["panel"]).listen == "127.0.0.1"
    assert cli.parse_args(["sim", "--panel"]).listen == "127.0.0.1"


def test_exercises_are_data_the_page_can_check():
    """Every exercise names only states, faults, scenarios and conditions that exist: a typo
    would leave a nurse waiting for a step that can never be ticked."""
    from ionto import fw, panel_hub

    states = set(fw.firmware("session").STATE_NAMES)
    faults = {row[1] for row in fw.firmware("limits").FAULTS}
    conds = {"state", "preset", "fault", "limited", "usb", "contact", "event", "refuse", "board_fault",
             "target_ua", "set_ua", "measured_ua", "true_ua", "dose_uas"}
    page = (Path(panel_hub.__file__).parent / "panel_web" / "panel.js").read_text()
    for c in conds - {"target_ua", "set_ua", "measured_ua", "true_ua", "dose_uas"}:
        assert 'k === "%s"' % c in page, "the page does not check %r" % c
    exs = panel_hub.load_exercises()
    assert len(exs) >= 5 and len({e["name"] for e in exs}) == len(exs)
    for e in exs:
        assert e["title"] and e["brief"] and e["steps"], e["name"]
        assert e.get("setup", {}).get("scenario", "palms") in panel_hub.scenario_names()
        for s in e["steps"]:
            assert s["text"] and (("when" in s) != ("quiz" in s)), (e["name"], s)
            if "quiz" in s:
                assert 0 <= s["quiz"]["answer"] < len(s["quiz"]["choices"])
                continue
            w = s["when"]
            assert set(w) <= conds, (e["name"], set(w) - conds)
            for st in [w["state"]] if isinstance(w.get("state"), str) else w.get("state", []):
                assert st in states, (e["name"], st)
            for k in ("fault", "refuse"):
                if k in w:
                    assert w[k] in faults, (e["name"], w[k])
            if "inject" in s:
                assert s["inject"] in panel_hub.FAULTS
            for k, v in w.items():
                if k.endswith("_ua"):
                    assert len(v) == 2 and v[0] <= v[1]


def test_a_power_cut_from_the_menu_restarts_the_unit_and_the_trace_goes_on(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=0) as vu:
        srv = PanelServer(vu.state_dir, unplug_usb=True).start()
        s = SSE(srv)
        try:
            unit_state(s)
            request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "take"})
            # The hand comes out and the power is cut before the hub's poller has read the
            # unit again: the hub must know the hand is out from the command itself.
            gate = threading.Event()
            poll = srv.hub.poll

            def gated_poll():
                gate.wait()
                return poll()

            srv.hub.poll = gated_poll
            try:
                st, r = request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "patient", "do": "tray",
                                                           "side": "right", "in": False})
                t_cut = srv.hub._last_t
                st, r = request(srv, "POST", "/cmd", body={"client": s.client, "cmd": "fault", "id": "power_cut"})
                assert st == 200, r
            finally:
                gate.set()
            s.wait(lambda m: any("the unit restarted" in e[2] for e in m.get("events", [])))
            # The panel's clock runs on across the unit's restart (its own starts again at 0),
            # and the patient's hand is still out of the water.
            m = s.wait(lambda m: m["type"] == "state" and m.get("samples") and m["samples"][-1][0] > t_cut + 500)
            ts = [row[0] for row in srv.hub.samples]
            assert ts == sorted(ts)
            s.wait(lambda m: m["type"] == "state" and m.get("patient") and m["patient"]["contact"] == "lifted"
                   and m["board"]["usb_host_present"] is False)
        finally:
            s.close()
            srv.stop()


def test_ionto_sim_panel_prints_a_loopback_address_and_ionto_panel_needs_a_unit(tmp_path, fw_bundle):
    import os
    import signal
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ionto.cli", "panel", "--state-dir", str(tmp_path), "--no-browser"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "ionto sim --panel" in r.stderr, r.stderr
    p = subprocess.Popen([sys.executable, "-m", "ionto.cli", "sim", "--panel", "--no-browser", "--state-dir",
                          str(tmp_path / "u"), "--fresh", "--seed-from", str(fw_bundle), "--accel", "0"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        url = None
        for line in p.stderr:
            if line.startswith("ionto panel: "):
                url = line.split()[-1]
                break
        assert url and url.startswith("http://127.0.0.1:"), url
        host, port = url[len("http://"):].rstrip("/").split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("GET", "/", headers={"Host": "%s:%s" % (host, port)})
        resp = c.getresponse()
        assert resp.status == 200 and b"ionto virtual unit" in resp.read()
        c.close()
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()
