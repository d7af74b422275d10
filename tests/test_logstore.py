"""firmware/logstore.py: session logs, event log, recovery and retention (CPython on a temp dir),
and under MicroPython on VfsLfs2 over hw/sim/flash.py (heap-locked sampling, flash full,
blackout figure, power cuts: tests/mpy/storage_checks.py and storage_powercut.py)."""
import os

import config
import logstore as LS
import pytest
import records as R
import session as S


from helpers import Clock, FakeSession  # noqa: E402


def _recs(path, stats=None):
    return R.read(open(path, "rb").read(), stats) if os.path.exists(path) else []


def _log(tmp_path, **kw):
    clk = kw.pop("clock", None) or Clock()
    lg = LS.Log(str(tmp_path / "log"), clock=clk, **kw)
    return lg, clk


def _run_session(lg, s, secs=5, reason=S.END_DONE, dose=1234):
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.on_session_event(S.EV_START, 0, s.target_ua, s)
    for i in range(secs):
        lg.sample(100 * i, 90 * i, 2000 + i, 3000 + 10 * i, i & 1, S.TREAT)
    s.treat_ms = secs * 1000
    lg.on_session_event(S.EV_END, reason, dose, s)
    lg.service(False)


def test_boot_counts_and_sequence_stays_monotonic(tmp_path):
    seqs = []
    for b in (1, 2, 3):
        lg, _ = _log(tmp_path)
        assert lg.open("power on", "0.1.0") == b
        seqs.append(lg.seq)
    recs = _recs(tmp_path / "log" / "events.log")
    assert [r["code"] for r in recs] == [LS.L_BOOT] * 3
    assert [r["boot"] for r in recs] == [1, 2, 3]
    assert recs[0]["text"] == "reset power on, firmware 0.1.0"
    s = [r["seq"] for r in recs]
    assert s == sorted(s) and len(set(s)) == 3
    assert not recs[0]["rtc_valid"]


def test_summary_is_on_flash_before_any_sample_and_the_session_reads_back(tmp_path):
    lg, clk = _log(tmp_path)
    lg.open("power on", "0.1.0")
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    sp = tmp_path / "log" / "s000001.sum"
    summ = _recs(sp)
    assert [r["type"] for r in summ] == ["summary"]
    assert summ[0]["session"] == 1 and summ[0]["preset"] == "hands_feet" and summ[0]["version"] == "0.1.0"
    assert summ[0]["target_ua"] == 15000 and summ[0]["duration_s"] == 1200 and summ[0]["boot"] == 1
    lg.on_session_event(S.EV_START, 0, 15000, s)
    for i in range(250):
        lg.sample(i, i + 1, 5000, 4000, 1, S.TREAT)
    lg.on_session_event(S.EV_ADJUST, 15000, 15500, s)
    # Output on: nothing is written (OFF_ONLY).
    assert not lg.service(True)
    assert not (tmp_path / "log" / "s000001.trc").exists()
    s.treat_ms = 250_000
    lg.on_session_event(S.EV_END, S.END_STOP, 99_000, s)
    assert lg.service(False)
    tr = _recs(tmp_path / "log" / "s000001.trc")
    samples = [x for r in tr if r["type"] == "samples" for x in r["samples"]]
    assert samples == [(i, i + 1, 5000, 4000, S.TREAT, 1) for i in range(250)]
    assert [r["t0"] for r in tr if r["type"] == "samples"] == [0, 99, 198]
    sev = [(r["code"], r["a"], r["b"]) for r in tr if r["type"] == "sev"]
    assert sev == [(S.EV_START, 0, 15000), (S.EV_ADJUST, 15000, 15500), (S.EV_END, S.END_STOP, 99_000)]
    end = _recs(sp)[-1]
    assert (end["type"], end["reason"], end["dose_uas"], end["treat_s"], end["samples"], end["lost"]) == \
        ("end", S.END_STOP, 99_000, 250, 250, 0)
    ev = _recs(tmp_path / "log" / "events.log")
    assert (ev[-1]["code"], ev[-1]["a"], ev[-1]["b"]) == (LS.L_SESSION, 1, S.END_STOP)
    # Every record of every file carries a unique, increasing sequence number.
    allrec = _recs(sp)[:1] + tr + _recs(sp)[1:]
    seqs = [r["seq"] for r in allrec]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_confirm_without_start_leaves_no_session(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open()
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    assert (tmp_path / "log" / "s000001.sum").exists()
    lg.on_session_event(S.EV_STATE, S.IDLE, S.CONFIRM, s)
    assert not (tmp_path / "log" / "s000001.sum").exists()
    _run_session(lg, s)
    assert (tmp_path / "log" / "s000002.sum").exists()  # numbers are never reused


def test_power_lost_session_is_closed_at_next_boot(tmp_path):
    lg, _ = _log(tmp_path, policy=LS.CADENCE)
    lg.open()
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.on_session_event(S.EV_START, 0, 15000, s)
    for i in range(40):
        lg.sample(i, i, 1, 1, 0, S.TREAT)
        lg.progress(i * 10, i)
    lg.flush()  # 40 samples committed
    for i in range(5):
        lg.sample(i, i, 1, 1, 0, S.TREAT)  # these die with the power
    lg2, _ = _log(tmp_path)
    lg2.open("power on")
    end = _recs(tmp_path / "log" / "s000001.sum")[-1]
    assert (end["type"], end["reason"], end["samples"], end["dose_uas"]) == ("end", LS.END_POWER_LOST, 40, 390)
    ev = [(r["code"], r.get("a")) for r in _recs(tmp_path / "log" / "events.log")]
    assert (LS.L_RECOVERED, 1) in ev


def test_cadence_policy_writes_with_the_output_on_every_flush_s(tmp_path):
    lg, clk = _log(tmp_path, policy=LS.CADENCE)
    lg.open()
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.sample(1, 1, 1, 1, 0, S.TREAT)
    assert not lg.service(True)
    clk.t += LS.FLUSH_S
    assert lg.service(True)
    assert len(_recs(tmp_path / "log" / "s000001.trc")) == 1


def test_clock_set_marks_later_records_rtc_valid(tmp_path):
    lg, clk = _log(tmp_path)
    lg.open()
    clk.t = 1_750_000_000
    lg.set_clock(1_750_000_000)
    lg.event(LS.L_SELFTEST, 1, 0)
    lg.flush()
    ev = _recs(tmp_path / "log" / "events.log")
    assert (ev[1]["code"], ev[1]["b"], ev[1]["rtc_valid"]) == (LS.L_CLOCK, 1_750_000_000, True)
    assert ev[2]["rtc_valid"] and not ev[0]["rtc_valid"]


def test_config_changes_reach_the_event_log(tmp_path):
    import cfgstore

    lg, _ = _log(tmp_path)
    lg.open()
    c = config.defaults()
    c["presets"][0]["target_ua"] = 16000
    cfgstore.CfgStore(str(tmp_path)).save(c, on_change=lg.config_event)
    lg.flush()
    t = [r["text"] for r in _recs(tmp_path / "log" / "events.log") if r["code"] == LS.L_CONFIG]
    assert t == ["presets[0].target_ua 15000 -> 16000"]


def test_damaged_state_file_is_rebuilt_from_the_records(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open()
    _run_session(lg, FakeSession())
    last = lg.seq
    (tmp_path / "log" / "state").write_text("garbage")
    lg2, _ = _log(tmp_path)
    assert lg2.open() == 2
    assert lg2.seq > last and lg2.session == 1


def _usage_of(tmp_path, total):
    def usage():
        used = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp_path / "log") for f in fs)
        return used, total
    return usage


def test_pruning_order_acked_traces_then_unacked_then_summaries(tmp_path):
    lg, _ = _log(tmp_path, usage=_usage_of(tmp_path, 10**9), max_summaries=100)
    lg.open()
    s = FakeSession()
    for _ in range(6):
        _run_session(lg, s, secs=200)
    d = tmp_path / "log"
    lg.ack(2)
    trc = os.path.getsize(d / "s000001.trc")
    summ = os.path.getsize(d / "s000001.sum")

    def traces():
        return [n for n in range(1, 20) if (d / ("s%06d.trc" % n)).exists()]

    def summaries():
        return [n for n in range(1, 20) if (d / ("s%06d.sum" % n)).exists()]

    def pruned():
        return [(r["a"], r["b"]) for r in _recs(d / "events.log") if r["code"] == LS.L_PRUNED]

    # Room for about one more trace than is there: the archived ones go first, silently.
    used = _usage_of(tmp_path, 0)()[0]
    lg._usage = _usage_of(tmp_path, (used + trc // 2) * 100 // 70)
    _run_session(lg, s, secs=200)
    assert traces()[0] in (2, 3) and traces()[-1] == 7 and pruned() == []
    # Tighter: archived trace 2 goes, then unarchived 3, 4... oldest first, each with an event.
    used = _usage_of(tmp_path, 0)()[0]
    lg._usage = _usage_of(tmp_path, (used - 2 * trc) * 100 // 70)
    _run_session(lg, s, secs=200)
    t = traces()
    assert t == list(range(t[0], 9)) and t[0] > 3 and summaries() == list(range(1, 9))
    assert pruned() == [(n, 0) for n in range(3, t[0])]
    # Squeezed to a little over one session: every older trace and then the oldest summaries
    # go; the current session is whole.
    lg._usage = _usage_of(tmp_path, (trc + 6 * summ) * 100 // 70)
    _run_session(lg, s, secs=200)
    assert traces() == [9]
    sm = summaries()
    assert sm[-1] == 9 and sm == list(range(sm[0], 10)) and sm[0] > 1
    assert _recs(d / "s000009.sum")[-1]["type"] == "end"
    assert (1, 2) in pruned()


def test_summaries_beyond_their_share_go_before_unarchived_traces(tmp_path):
    lg, _ = _log(tmp_path, usage=_usage_of(tmp_path, 10**9), max_summaries=4)
    lg.open()
    s = FakeSession()
    for _ in range(6):
        _run_session(lg, s, secs=20)
    d = tmp_path / "log"
    lg._usage = _usage_of(tmp_path, 1)  # over budget: prune until nothing but the newest is left
    _run_session(lg, s, secs=20)
    left = sorted(os.listdir(d))
    assert "s000007.sum" in left and "s000007.trc" in left
    pr = [(r["a"], r["b"]) for r in _recs(d / "events.log") if r["code"] == LS.L_PRUNED]
    # Oldest session first, its unarchived trace (b=0) before its summary (b=2).
    assert pr[:4] == [(1, 0), (1, 2), (2, 0), (2, 2)]


def test_firmware_update_and_selftest_are_logged(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open("power on", "0.1.0")
    lg2, _ = _log(tmp_path)
    lg2.open("watchdog", "0.2.0")
    lg2.selftest(False, [("sensor", True, "ok"), ("config", False, "presets[0].target_ua: bad")])
    lg2.flush()
    t = [(r["code"], r.get("text")) for r in _recs(tmp_path / "log" / "events.log")]
    assert (LS.L_FIRMWARE, "0.1.0 -> 0.2.0") in t
    assert (LS.L_BOOT, "reset watchdog, firmware 0.2.0") in t
    assert (LS.L_SELFTEST, "FAILED config: presets[0].target_ua: bad") in t


def test_summary_that_cannot_be_written_is_reported(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open()
    lg.root = str(tmp_path / "nonexistent" / "x")
    assert lg.begin(0, FakeSession().preset, 15000) is False and not lg.summary_ok


def test_write_errors_never_reach_the_loop(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open()
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.root = str(tmp_path / "nonexistent" / "x")  # every open fails
    lg.sample(1, 1, 1, 1, 0, 4)
    lg.on_session_event(S.EV_END, 1, 5, s)
    assert lg.service(False) is True
    assert lg.write_errors >= 1 and lg.lost >= 1


# --- MicroPython on LittleFS over hw/sim/flash.py ---------------------------------------------

def test_sampling_allocates_nothing_under_micropython(mpy, tmp_path):
    r = mpy("import storage_checks; storage_checks.log_heap(%r)" % str(tmp_path / "h.img"))
    assert r.stdout.startswith("OK heap")


def test_200_sessions_on_a_small_flash_prune_in_order_without_heap_growth(mpy, tmp_path):
    # 48 blocks (192 KiB): the budget is hit after a few dozen sessions; every session stays
    # whole at the time it ends, summaries outlive traces, nothing is lost, the heap is flat.
    r = mpy("import storage_checks; storage_checks.log_full(%r, 200, 48)" % str(tmp_path / "f.img"))
    ok, name, sessions, pruned = r.stdout.split()[:4]
    assert (ok, name, sessions) == ("OK", "full", "200") and int(pruned) > 100


def test_flash_filled_by_other_files_never_stops_the_current_summary(mpy, tmp_path):
    r = mpy("import storage_checks; storage_checks.log_hog(%r, 64)" % str(tmp_path / "g.img"))
    assert r.stdout.startswith("OK hog")


def test_sessions_that_fit_before_pruning(mpy, tmp_path):
    # Pico-sized flash, 40-min sessions: the `make bench` figure (about 32).
    r = mpy("import storage_checks; storage_checks.capacity(%r, 40)" % str(tmp_path / "c.img"))
    n = int(r.stdout.split()[2].split("=")[1])
    assert n >= 20


def test_blackout_figures(mpy, tmp_path):
    # The figure behind the OFF_ONLY choice: a flush can cost a whole sector erase.
    r = mpy("import storage_checks; storage_checks.blackout(%r, 10)" % str(tmp_path / "b.img"))
    f = dict(kv.split("=") for kv in r.stdout.split()[2:8:1] if "=" in kv)
    assert r.stdout.startswith("OK blackout")
    assert int(f["cadence_worst_us"]) >= 45_000  # > limits.LOOP_OVERRUN_US: why not CADENCE


@pytest.mark.parametrize("seed", [1, 2])
def test_power_cuts_during_sessions_and_config_writes(mpy, tmp_path, seed):
    # 2 x 260 cuts at random block writes or erases (boot, config save, summary, trace commit,
    # end record); every check of storage_powercut._check holds after each one.
    r = mpy("import storage_powercut; storage_powercut.run(%r, 260, %d)" % (str(tmp_path / "p.img"), seed),
            timeout=300)
    last = [ln for ln in r.stdout.splitlines() if ln.startswith("OK powercut")][-1].split()
    assert last[2] == "260" and int(last[3]) > 20
    phases = dict(kv.split("=") for kv in last[5:])
    assert set(phases) == {"boot", "config", "summary", "trace", "end"}


def test_a_new_session_never_drops_an_ended_or_started_one(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open()
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.on_session_event(S.EV_START, 0, 15000, s)
    lg.sample(1, 1, 1, 1, 0, 4)
    lg.on_session_event(S.EV_END, S.END_DONE, 10, s)
    # No service() in between: the next CONFIRM still writes session 1's end first.
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    d = tmp_path / "log"
    assert [r["type"] for r in _recs(d / "s000001.sum")] == ["summary", "end"]
    # A started session whose end never came is closed (reason 0), not deleted.
    lg.on_session_event(S.EV_START, 0, 15000, s)
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    assert [(r["type"], r.get("reason")) for r in _recs(d / "s000002.sum")] == [("summary", None), ("end", 0)]
    assert (d / "s000003.sum").exists()


def test_event_log_rotates_and_stays_bounded(tmp_path):
    lg, _ = _log(tmp_path)
    lg.open()
    for i in range(40):
        for k in range(20):
            lg.event(LS.L_REFUSED, i, k)
        lg.flush()
    d = tmp_path / "log"
    assert (d / "events.old").exists()
    total = os.path.getsize(d / "events.log") + os.path.getsize(d / "events.old")
    assert total <= 2 * LS.EV_FILE_MAX + 20 * 31
    recs = _recs(d / "events.old") + _recs(d / "events.log")
    seqs = [r["seq"] for r in recs]
    assert seqs == sorted(seqs) and recs[-1]["a"] == 39 and recs[-1]["b"] == 19
