"""The control channel: JSON-line requests from clients on STATE/control.sock, answered here
(power, cable, status, interruptions) or relayed to the unit over its FIFOs and the replies sent
back in order. The protocol is described in ionto/unit_server/__init__.py."""
import json
import os
import signal

_BOARD_STICKY = ("scenario", "usb")  # board settings replayed after a restart
_BOARD_FAULTS = ("i2c_nack", "i2c_stuck", "sensor_stuck", "sensor_frozen", "sensor_gain", "sensor_noise",
                 "sensor_drift", "output_stuck_on", "output_dead")


class _Client:
    def __init__(self, sock):
        self.sock = sock
        self.rbuf = b""
        self.wbuf = b""


class ControlChannel:
    """Mixed into UnitServer: self.clients, self.pending, self.next_id, self.sticky, self.ctl_w,
    self.ctl_r, self.ctl_rbuf are the server's."""

    # --- control channel -----------------------------------------------------------------
    def _reply(self, client, reply, their_id=None):
        reply.pop("id", None)
        if their_id is not None:
            reply["id"] = their_id
        client.wbuf += json.dumps(reply).encode() + b"\n"
        self._flush_client(client)

    def _flush_client(self, client):
        try:
            while client.wbuf:
                n = client.sock.send(client.wbuf)
                client.wbuf = client.wbuf[n:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop_client(client)

    def _drop_client(self, client):
        if client in self.clients:
            self.clients.remove(client)
        for rid, (cl, their) in list(self.pending.items()):
            if cl is client:
                self.pending[rid] = (None, None)
        try:
            client.sock.close()
        except OSError:
            pass

    def _relay(self, client, cmd, their_id=None):
        rid = self.next_id
        self.next_id += 1
        cmd["id"] = rid
        self.pending[rid] = (client, their_id)
        data = json.dumps(cmd).encode() + b"\n"
        try:
            os.write(self.ctl_w, data)
        except BlockingIOError:
            del self.pending[rid]
            if client is not None:
                self._reply(client, {"ok": False, "error": "the unit is not reading its control channel"}, their_id)

    def _remember(self, cmd):
        c = cmd.get("cmd")
        kind = cmd.get("kind")
        if c in _BOARD_STICKY or c == "accel":
            self.sticky = [s for s in self.sticky if s.get("cmd") != c]
            self.sticky.append(cmd)
            if c == "scenario" and isinstance(cmd.get("name"), str):
                self.scenario = cmd["name"]
            if c == "accel":
                self.accel = float(cmd.get("x", self.accel))
        elif c == "fault" and kind in _BOARD_FAULTS:
            self.sticky.append(cmd)
        elif c == "clear_faults" or (c == "fault" and kind == "clear"):
            self.sticky = [s for s in self.sticky if s.get("cmd") != "fault"]

    def _request(self, client, line):
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
                raise ValueError("a request is a JSON object with a \"cmd\" string")
        except ValueError as e:
            self._reply(client, {"ok": False, "error": "bad request: %s" % e})
            return
        their = cmd.pop("id", None)
        c = cmd["cmd"]
        if c == "power_cycle":
            self.power_cycle()
            self._reply(client, {"ok": True, "boots": self.boots}, their)
        elif c == "status":
            self._reply(client, self.status(), their)
        elif c == "unplug":
            self.unplug()
            self._reply(client, {"ok": True}, their)
        elif c == "replug":
            self._reply(client, {"ok": True, "port": self.replug()}, their)
        elif c == "interrupt":
            # TEST-ONLY: after `after` more bytes cross the port in direction `dir` (from_host or
            # to_host), send `signal` to `pid`, or unplug the cable (action "unplug"). At the
            # exact byte, so an interruption test needs no timing of its own.
            if cmd.get("action") == "none":
                self.trigger = None
                self._reply(client, {"ok": True}, their)
                return
            try:
                self.trigger = {"dir": cmd.get("dir", "from_host"), "left": max(1, int(cmd.get("after", 1))),
                                "action": cmd.get("action", "signal"), "pid": cmd.get("pid"),
                                "signal": int(cmd.get("signal", signal.SIGINT))}
                if self.trigger["dir"] not in ("from_host", "to_host"):
                    raise ValueError("dir is from_host or to_host")
                self._reply(client, {"ok": True}, their)
            except (TypeError, ValueError) as e:
                self.trigger = None
                self._reply(client, {"ok": False, "error": "interrupt: %s" % e}, their)
        elif c == "stop":
            self._reply(client, {"ok": True}, their)
            self.running = False
        elif self.child is None:
            self._reply(client, {"ok": False, "error": "the unit is off: %s" % self.off_reason}, their)
        else:
            self._remember(dict(cmd))
            self._relay(client, cmd, their)

    def status(self):
        return {"ok": True, "port": self.port, "state_dir": str(self.state), "pid": os.getpid(),
                "unit_pid": self.child.pid if self.child else None, "running": self.child is not None,
                "off_reason": self.off_reason, "boots": self.boots, "last_exit": self.last_exit,
                "output_dropped": self.dropped, "plugged": self.master is not None,
                "bytes": dict(self.counts)}

    def _ctl_replies(self):
        try:
            while True:
                b = os.read(self.ctl_r, 65536)
                if not b:
                    break
                self.ctl_rbuf += b
        except BlockingIOError:
            pass
        while b"\n" in self.ctl_rbuf:
            line, self.ctl_rbuf = self.ctl_rbuf.split(b"\n", 1)
            try:
                reply = json.loads(line)
            except ValueError:
                self._log("garbled control reply: %r" % line[:200])
                continue
            rid = reply.pop("id", None)
            client, their = self.pending.pop(rid, (None, None))
            if client is not None:
                self._reply(client, reply, their)
