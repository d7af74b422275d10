"""`ionto panel`: the virtual unit's front panel in a browser (also `ionto sim --panel`).

    ionto sim --panel                      # a virtual unit and its panel; prints the address
    ionto panel [--state-dir .sim]         # the panel of a virtual unit already running
        [--http-port N] [--listen ADDR] [--no-browser]

A local web page shows the unit as it looks (display, buttons, LED, buzzer, USB and faults),
the patient's side, a live chart of what no real unit shows, training exercises, and a
share button. ionto/panel_hub.py talks to the unit; the page is panel_web/ (plain HTML,
CSS and JavaScript: no build step, nothing fetched from the internet).

Why the standard library (http.server + Server-Sent Events) and not aiohttp/Starlette with
websockets: the page needs a stream from the unit (~10 small updates a second) and a few
clicks back, which SSE plus plain POSTs carry; no new dependency to vet, pin and keep
working offline, and the whole server stays readable in one file. A threaded server gives
each open tab a thread: a handful of tabs, never thousands.

It listens on 127.0.0.1 unless --listen names another address (then it says so, loudly).
Every request must name this server in its Host header (a guard against DNS rebinding);
commands are POSTs of JSON at most MAX_BODY bytes from the page's own origin; anything else
is refused with one line saying why, before anything reaches the unit.
"""
import ipaddress
import json
import os
import queue
import signal
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .errors import EXIT_NO_DEVICE, EXIT_USAGE, IontoError
from .panel_hub import Hub, Refused
from .simctl import SimClient, SimError

WEB = Path(__file__).resolve().parent / "panel_web"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/panel.js": ("panel.js", "text/javascript; charset=utf-8"),
          "/panel.css": ("panel.css", "text/css; charset=utf-8")}
MAX_BODY = 4096
KEEPALIVE_S = 10.0
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(addr):
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return addr == "localhost"


class _Handler(BaseHTTPRequestHandler):
    server_version = "ionto-panel"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the terminal belongs to the unit's port line
        pass

    # --- replies ------------------------------------------------------------------------------
    def _send(self, status, body, ctype="application/json", extra=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; "
                         "style-src 'self'; script-src 'self'; connect-src 'self'")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status, message):
        self.close_connection = True
        self._send(status, {"ok": False, "error": message})

    def _host_ok(self):
        host = self.headers.get("Host", "")
        port = self.server.server_address[1]
        ok = {"%s:%d" % (n, port) for n in _LOOPBACK_NAMES}
        if not self.server.loopback_only:
            return host.rsplit(":", 1)[-1] == str(port)
        return host in ok

    def _origin_ok(self, required):
        origin = self.headers.get("Origin")
        if origin is None:
            return not required
        return origin == "http://" + self.headers.get("Host", "")

    def _guard(self, post=False):
        if not self._host_ok():
            self._refuse(403, "refused: this panel answers only as %s (Host header %r)" % (
                self.server.url, self.headers.get("Host")))
            return False
        if not self._origin_ok(required=post):
            self._refuse(403, "refused: a request from another origin (%s); the panel takes commands only "
                         "from its own page" % self.headers.get("Origin", "no Origin header"))
            return False
        if self.headers.get("Sec-Fetch-Site") == "cross-site":
            self._refuse(403, "refused: a cross-site request")
            return False
        return True

    # --- GET ----------------------------------------------------------------------------------
    def do_GET(self):
        if not self._guard():
            return
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            name, ctype = STATIC[path]
            self._send(200, (WEB / name).read_bytes(), ctype)
        elif path == "/events":
            self._events()
        elif path == "/record":
            rec = self.server.hub.record()
            self._send(200, json.dumps(rec, separators=(",", ":")), "application/json",
                       [("Content-Disposition", 'attachment; filename="ionto-panel-record.json"')])
        else:
            self._refuse(404, "no such page: %s" % path)

    def do_HEAD(self):
        if self.path.split("?", 1)[0] in STATIC:
            self.do_GET()
        else:
            self._refuse(405, "HEAD only for the page's files")

    def _events(self):
        hub = self.server.hub
        cid, q = hub.subscribe()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.close_connection = True
            while not self.server.stopping:
                try:
                    msg = q.get(timeout=KEEPALIVE_S)
                    data = "data: %s\n\n" % json.dumps(msg, separators=(",", ":"))
                except queue.Empty:
                    data = ": keepalive\n\n"
                self.wfile.write(data.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the tab closed
        finally:
            hub.unsubscribe(cid)

    # --- POST ---------------------------------------------------------------------------------
    def do_POST(self):
        if not self._guard(post=True):
            return
        if self.path != "/cmd":
            self._refuse(404, "no such command endpoint: %s (commands go to /cmd)" % self.path)
            return
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/json":
            self._refuse(415, "refused: commands are JSON (Content-Type application/json), not %r" % ctype)
            return
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(411, "refused: a command needs a Content-Length")
            return
        if n < 0 or n > MAX_BODY:
            self._refuse(413, "refused: a command is at most %d bytes, this one is %d" % (MAX_BODY, n))
            return
        try:
            msg = json.loads(self.rfile.read(n))
        except ValueError as e:
            self._refuse(400, "refused: not JSON (%s)" % e)
            return
        cid = msg.get("client") if isinstance(msg, dict) else None
        try:
            r = self.server.hub.command(cid, msg)
        except Refused as e:
            self._refuse(e.status, e.message)
            return
        self._send(200, r)


class PanelServer:
    """The HTTP server and its hub, in threads; stop() ends both and releases held buttons."""

    def __init__(self, state_dir=".sim", host="127.0.0.1", port=0, unplug_usb=False):
        self.hub = Hub(state_dir)
        try:
            self.httpd = ThreadingHTTPServer((host, port), _Handler)
        except OSError as e:
            raise IontoError(EXIT_USAGE, "cannot listen on %s:%d: %s (choose another --http-port)" % (
                host, port, e.strerror or e))
        self.httpd.daemon_threads = True
        self.httpd.hub = self.hub
        self.httpd.stopping = False
        self.httpd.loopback_only = is_loopback(host)
        h, p = self.httpd.server_address[:2]
        shown = "127.0.0.1" if self.httpd.loopback_only else h
        self.url = "http://%s:%d/" % (shown, p)
        self.httpd.url = self.url
        self.host = host
        self.unplug_usb = unplug_usb
        self._thread = None

    def start(self):
        if self.unplug_usb:
            # A unit in the clinic has no cable: START would be refused (patient isolation).
            self.hub.initial.append({"cmd": "usb", "host_present": False})
        self.hub.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="panel-http", daemon=True)
        self._thread.start()
        return self

    def stop(self, unit_going=False):
        self.httpd.stopping = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.hub.stop(unit_going)

    def announce(self, out=sys.stderr):
        out.write("ionto panel: %s\n" % self.url)
        if not self.httpd.loopback_only:
            out.write("ionto panel: WARNING: listening on %s, beyond this computer: anyone who can reach it "
                      "can drive the virtual unit\n" % self.host)
        out.flush()


def open_browser(url):
    """Open the page where a graphical browser can be expected; never a text browser in the
    terminal that serves the unit."""
    if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        try:
            return webbrowser.open(url)
        except webbrowser.Error:
            return False
    return False


def add_panel_arguments(p):
    p.add_argument("--http-port", type=int, default=0, metavar="N",
                   help="the panel's port (default: a free one, printed)")
    p.add_argument("--listen", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")


def add_arguments(p):
    p.add_argument("--state-dir", default=".sim", help="the running virtual unit's state folder (.sim)")
    add_panel_arguments(p)


def start_panel(args, state_dir, unplug_usb=False):
    srv = PanelServer(state_dir, args.listen, args.http_port, unplug_usb=unplug_usb).start()
    srv.announce()
    if not args.no_browser:
        open_browser(srv.url)
    return srv


def run(args):
    try:
        SimClient(args.state_dir, timeout=3.0).ping()
    except SimError as e:
        raise IontoError(EXIT_NO_DEVICE, "%s; start one with `ionto sim --panel` (or `ionto sim`, then `ionto panel`)"
                         % e)
    srv = start_panel(args, args.state_dir)
    done = threading.Event()

    def _term(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, _term)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0
