// The front panel of the virtual unit. Plain JavaScript, no build step, nothing fetched from
// the internet: one EventSource for what the unit does, POST /cmd for what the user does.
// One file on purpose: the page loads it without a bundler or modules; it is grouped by panel
// part, in this order: display, commands, buttons, sound, stream, chart, patient, training, replay.
"use strict";

const P = (window.panel = {
  client: null, driver: null, columns: [], states: [], faultWords: {}, scenarios: [],
  samples: [], events: [], frame: null, glass: null, snap: null, replay: null,
  beeps: 0, framesDrawn: 0, exercises: [], ex: null, done: {}, muted: true, lastError: "",
});
const $ = (id) => document.getElementById(id);
const C = {}; // column name -> index

// --- the display: GDDRAM + controller settings -> what the glass shows (as the SSD1306 does)
function hexBytes(hex) {
  const b = new Uint8Array(hex.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(hex.substr(2 * i, 2), 16);
  return b;
}

function glassOf(hex, fl) {
  // Mirrors hw/sim/ssd1306_model.py to_rows(panel=True): off = dark; entire-on; COM scan,
  // start line and offset; segment remap; inversion.
  const out = new Uint8Array(128 * 64);
  if (!fl || !fl.on) return out;
  const fr = hexBytes(hex);
  for (let y = 0; y < 64; y++) {
    if (fl.entire_on) { out.fill(1, y * 128, y * 128 + 128); continue; }
    const yy = fl.com_reverse ? y : 63 - y;
    const ry = (yy + fl.start_line + fl.offset) & 63;
    for (let x = 0; x < 128; x++) {
      const px = fl.seg_remap ? x : 127 - x;
      out[y * 128 + x] = ((fr[(ry >> 3) * 128 + px] >> (ry & 7)) & 1) ^ (fl.invert ? 1 : 0);
    }
  }
  return out;
}

function drawDisplay(frame) {
  if (!frame) return;
  const [, hex, fl] = frame;
  const g = glassOf(hex, fl);
  P.glass = g;
  const cv = $("oled");
  const ctx = cv.getContext("2d");
  const img = ctx.createImageData(128, 64);
  // Lit pixels in the module's light blue; contrast dims them a little, as on the glass.
  const k = 0.55 + 0.45 * ((fl && fl.contrast !== undefined ? fl.contrast : 255) / 255);
  for (let i = 0; i < g.length; i++) {
    const o = i * 4;
    img.data[o] = g[i] ? 0x9f * k : 0;
    img.data[o + 1] = g[i] ? 0xe8 * k : 0;
    img.data[o + 2] = g[i] ? 0xff * k : 0;
    img.data[o + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  P.framesDrawn++;
  cv.dataset.frames = P.framesDrawn;
}

// The lit pixels as 64 lines of '#' and '.' (what tests compare with the SSD1306 model).
P.glassText = () => {
  if (!P.glass) return "";
  const lines = [];
  for (let y = 0; y < 64; y++) {
    let s = "";
    for (let x = 0; x < 128; x++) s += P.glass[y * 128 + x] ? "#" : ".";
    lines.push(s);
  }
  return lines.join("\n");
};
// The same read back from the canvas's pixels: proves what is on screen.
P.canvasText = () => {
  const d = $("oled").getContext("2d").getImageData(0, 0, 128, 64).data;
  const lines = [];
  for (let y = 0; y < 64; y++) {
    let s = "";
    for (let x = 0; x < 128; x++) s += d[(y * 128 + x) * 4 + 2] > 60 ? "#" : ".";
    lines.push(s);
  }
  return lines.join("\n");
};

// --- commands -----------------------------------------------------------------------------
async function send(cmd, args) {
  if (P.replay) return null;
  const body = Object.assign({ client: P.client, cmd: cmd }, args || {});
  let j;
  try {
    const r = await fetch("/cmd", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    j = await r.json();
  } catch (e) {
    j = { ok: false, error: "the panel server did not answer (" + e + ")" };
  }
  if (!j.ok) {
    P.lastError = j.error;
    banner(j.error, 6000);
  }
  return j;
}

let bannerTimer = null;
function banner(text, ms) {
  const b = $("offline");
  b.textContent = text;
  b.hidden = !text;
  clearTimeout(bannerTimer);
  if (ms) bannerTimer = setTimeout(() => { b.hidden = true; }, ms);
}

// --- buttons: mouse, touch, keyboard --------------------------------------------------------
// A short press is sent as one press (held 120 ms of the unit's time, whatever the time
// acceleration); kept down past HOLD_MS it becomes a hold until released.
const HOLD_MS = 450;
const down = {};
function btnDown(name) {
  if (down[name]) return;
  const el = document.querySelector('[data-btn="' + name + '"]');
  if (el) el.classList.add("down");
  down[name] = { held: false, timer: setTimeout(() => { down[name].held = true; send("hold", { button: name }); }, HOLD_MS) };
}
function btnUp(name) {
  const d = down[name];
  if (!d) return;
  delete down[name];
  clearTimeout(d.timer);
  const el = document.querySelector('[data-btn="' + name + '"]');
  if (el) el.classList.remove("down");
  send(d.held ? "release" : "press", { button: name });
}
function releaseAll() {
  for (const n of Object.keys(down)) btnUp(n);
}
document.querySelectorAll("[data-btn]").forEach((el) => {
  const n = el.dataset.btn;
  el.addEventListener("pointerdown", (e) => { e.preventDefault(); el.setPointerCapture(e.pointerId); btnDown(n); });
  el.addEventListener("pointerup", () => btnUp(n));
  el.addEventListener("pointercancel", () => btnUp(n));
  el.addEventListener("contextmenu", (e) => e.preventDefault());
});
const KEYS = { s: "START", Enter: "START", x: "STOP", Escape: "STOP", ArrowUp: "UP", "+": "UP", ArrowDown: "DOWN", "-": "DOWN", m: "MODE" };
function keyName(e) {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return null;
  return KEYS[e.key] || KEYS[e.key.toLowerCase()] || null;
}
document.addEventListener("keydown", (e) => {
  const n = keyName(e);
  if (!n || e.repeat) return;
  e.preventDefault();
  btnDown(n);
});
document.addEventListener("keyup", (e) => { const n = keyName(e); if (n) btnUp(n); });
window.addEventListener("blur", releaseAll);

// --- sound: the buzzer's notes through Web Audio (after a click: browsers ask for one) -----
let audio = null;
$("mute").addEventListener("click", () => {
  P.muted = !P.muted;
  $("mute").textContent = P.muted ? "sound off" : "sound on";
  if (!P.muted && !audio) {
    try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { audio = null; }
  }
});
function playBuzz(notes, accel) {
  // notes: [t_ms, freq, duty] changes; a note sounds from a change with duty > 0 to the next.
  for (let i = 0; i < notes.length; i++) {
    const [t, f, d] = notes[i];
    if (!(f > 0 && d > 0)) continue;
    P.beeps++;
    const next = notes[i + 1];
    const dur = Math.min(1.0, Math.max(0.03, ((next ? next[0] : t + 150) - t) / 1000));
    const at = (t - notes[0][0]) / 1000 / (accel > 0 ? accel : 20);
    const lamp = $("beep");
    setTimeout(() => lamp.classList.add("on"), at * 1000);
    setTimeout(() => lamp.classList.remove("on"), (at + dur) * 1000);
    if (!audio || P.muted) continue;
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.type = "square";
    o.frequency.value = f;
    g.gain.value = 0.05;
    o.connect(g).connect(audio.destination);
    o.start(audio.currentTime + at);
    o.stop(audio.currentTime + at + dur);
  }
  document.body.dataset.beeps = P.beeps;
}

// --- the stream -----------------------------------------------------------------------------
function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { $("conn").textContent = "connected"; $("conn").className = "chip ok"; };
  es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "chip bad"; };
  es.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "hello") hello(m);
    else if (m.type === "state") state(m);
  };
}

function hello(m) {
  P.client = m.client;
  P.columns = m.columns;
  m.columns.forEach((c, i) => { C[c] = i; });
  P.states = m.states;
  P.faultWords = m.fault_words;
  P.scenarios = m.scenarios;
  P.samples = m.history || [];
  P.events = m.events || [];
  const sel = $("scenario");
  sel.innerHTML = "";
  for (const n of m.scenarios) sel.add(new Option(n.replace(/_/g, " "), n));
  const fs = $("faultsel");
  fs.innerHTML = "";
  for (const [k, v] of Object.entries(m.faults)) fs.add(new Option(v, k));
  P.exercises = m.exercises;
  renderExercises();
  $("events").innerHTML = "";
  P.events.forEach(addEventLine);
  if (m.frame && !P.replay) drawDisplay(m.frame);
  document.body.dataset.client = m.client;
  scheduleChart();
}

function state(m) {
  if (m.error || m.off) {
    banner(m.off ? "The unit is off: " + m.off : "No answer from the virtual unit: " + m.error);
    P.offline = true;
    $("conn").textContent = m.off ? "unit off" : "unit not answering";
    $("conn").className = "chip bad";
    return;
  }
  if (P.offline) { P.offline = false; banner(""); }
  $("conn").textContent = "connected";
  $("conn").className = "chip ok";
  P.snap = m;
  P.driver = m.driver;
  for (const r of m.samples) if (!P.samples.length || r[0] > P.samples[P.samples.length - 1][0]) P.samples.push(r);
  // events_start: the first new event's index in the whole list (a new tab's hello may
  // already hold the first few)
  m.events.forEach((ev, i) => {
    if (m.events_start + i < P.events.length) return;
    P.events.push(ev);
    if (!P.replay) addEventLine(ev);
  });
  if (m.frames.length) { P.frame = m.frames[m.frames.length - 1]; if (!P.replay) drawDisplay(P.frame); }
  if (m.buzz.length) playBuzz(m.buzz, m.accel);
  if (!P.replay) { indicators(m); readout(m.unit, m.t_ms); }
  checkExercise(m);
  scheduleChart();
}

function indicators(m) {
  const me = m.driver === P.client;
  document.body.classList.toggle("readonly", !me);
  $("drive").textContent = me ? "you drive the unit" : m.driver ? "another tab drives: you watch" : "nobody drives";
  $("drive").className = "chip " + (me ? "ok" : "warn");
  $("take").hidden = me;
  const per = m.measured_period_us || m.period_us;
  $("period").textContent = "control period " + (per / 1000).toFixed(per % 1000 ? 1 : 0) + " ms" + (m.clients > 1 ? " · " + m.clients + " tabs" : "");
  $("led").classList.toggle("on", !!m.led);
  const usb = m.board.usb_host_present;
  $("usb").classList.toggle("on", usb);
  $("usb").textContent = usb ? "USB connected" : "USB";
  $("usbtoggle").textContent = usb ? "Unplug USB" : "Plug in USB";
  const u = m.unit || {};
  const hwFaults = m.board.faults.concat(m.board.hw_limit ? ["limiter tripped"] : []);
  const unitFault = u.state_name === "FAULT";
  $("faultlamp").hidden = !(unitFault || hwFaults.length);
  $("faultlamp").textContent = unitFault ? "FAULT" + (u.fault_words ? ": " + u.fault_words.line1 : "") : "part broken: " + hwFaults.join(", ");
  const p = m.patient || { trays: { left: true, right: true } };
  for (const side of ["left", "right"]) {
    const t = $("tray-" + side);
    t.classList.toggle("in", p.trays[side]);
    t.classList.toggle("out", !p.trays[side]);
    t.classList.toggle("short", p.one_tray);
    const l = t.querySelector(".limb");
    if (l.dataset.kind !== m.board.scenario) { l.innerHTML = limb(m.board.scenario); l.dataset.kind = m.board.scenario; }
  }
  $("p-soft").classList.toggle("on", !!p.soft_water);
  $("p-cut").classList.toggle("on", !!p.cut);
  $("p-onetray").classList.toggle("on", !!p.one_tray);
  const sel = $("scenario");
  if (document.activeElement !== sel) sel.value = m.board.scenario;
  document.querySelectorAll('input[name="accel"]').forEach((r) => { r.checked = Number(r.value) === m.accel; });
  document.body.dataset.state = u.state_name || "";
  document.body.dataset.contact = p.contact || "";
}

// Drawn, not emoji: a machine without an emoji font shows the same page.
const LIMBS = {
  hand: '<svg viewBox="0 0 40 52" width="40" height="52"><g fill="#f1c7a5" stroke="#9c6b4e" stroke-width="1.5">' +
    '<rect x="8" y="4" width="5" height="24" rx="2.5"/><rect x="14" y="1" width="5" height="26" rx="2.5"/>' +
    '<rect x="20" y="2" width="5" height="25" rx="2.5"/><rect x="26" y="6" width="5" height="22" rx="2.5"/>' +
    '<rect x="1" y="22" width="12" height="5" rx="2.5" transform="rotate(-35 7 24)"/>' +
    '<rect x="7" y="20" width="25" height="30" rx="8"/></g></svg>',
  foot: '<svg viewBox="0 0 40 52" width="40" height="52"><g fill="#f1c7a5" stroke="#9c6b4e" stroke-width="1.5">' +
    '<ellipse cx="20" cy="32" rx="11" ry="18"/><circle cx="11" cy="9" r="3.5"/><circle cx="17" cy="6" r="3.5"/>' +
    '<circle cx="23" cy="6" r="3"/><circle cx="28" cy="8" r="2.5"/><circle cx="31" cy="12" r="2"/></g></svg>',
  pad: '<svg viewBox="0 0 40 52" width="40" height="52"><rect x="6" y="14" width="28" height="30" rx="4" fill="#e8eef5" stroke="#6a7383" stroke-width="1.5"/></svg>',
};
function limb(scn) {
  return LIMBS[scn === "soles" ? "foot" : scn === "armpits" ? "pad" : "hand"];
}

// The page formats its live readout and a saved record's replay itself (a record plays back
// without the host); the words and formats are those of ionto/words.py, the tools' vocabulary.
function mmss(s) {
  s = Math.max(0, s | 0);
  return String((s / 60) | 0) + ":" + String(s % 60).padStart(2, "0");
}

function readout(u, t) {
  if (!u) return;
  $("r-state").textContent = u.state_name + (u.fault_words ? ": " + u.fault_words.name + " (" + u.fault_words.line1 + " / " + u.fault_words.line2 + ")" : "") + (u.limited_ua >= 0 ? " (limited)" : "");
  $("r-left").textContent = u.state >= 0 ? mmss(u.time_left_s) : "–";
  $("r-dose").textContent = (u.dose_uas / 60000).toFixed(1) + " mA.min";
  $("r-true").textContent = (u.true_ua / 1000).toFixed(2) + " mA (measured " + (u.measured_ua / 1000).toFixed(2) + ", set " + (u.set_ua / 1000).toFixed(2) + ", target " + (u.target_ua / 1000).toFixed(1) + ")";
  $("r-mv").textContent = (u.electrode_mv / 1000).toFixed(1) + " V";
  $("r-load").textContent = u.load_ohm >= 0 ? (u.load_ohm / 1000).toFixed(2) + " kOhm" : "open (no contact)";
}

function addEventLine(ev) {
  const li = document.createElement("li");
  li.className = ev[1];
  li.textContent = clock(ev[0]) + "  " + ev[2];
  const list = $("events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 300) list.removeChild(list.lastChild);
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return String(Math.floor(s / 3600)).padStart(1, "0") + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
}

// --- the chart ------------------------------------------------------------------------------
let chartPending = false;
let lastChart = 0;
function scheduleChart() {
  if (chartPending) return;
  chartPending = true;
  const wait = Math.max(0, 250 - (performance.now() - lastChart));
  setTimeout(() => requestAnimationFrame(() => { chartPending = false; lastChart = performance.now(); drawChart(); }), wait);
}

const COLORS = {};
function cssVar(n) { return getComputedStyle(document.documentElement).getPropertyValue(n).trim(); }

function drawChart() {
  const cv = $("chart");
  const w = (cv.width = cv.clientWidth || 1100);
  const h = (cv.height = 340);
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  for (const k of ["target", "set", "measured", "true", "mv", "load", "pause", "reverse", "limit", "fault", "panel"]) COLORS[k] = cssVar("--" + k);
  const rows = P.replay ? P.replay.samples : P.samples;
  const evs = P.replay ? P.replay.events : P.events;
  if (!rows.length) return;
  const win = Number($("window").value);
  const tEnd = P.replay ? P.replay.t1 : rows[rows.length - 1][0];
  const tStart = win && !P.replay ? Math.max(rows[0][0], tEnd - win) : rows[0][0];
  const span = Math.max(1000, tEnd - tStart);
  const L = 52, R = 58, top1 = 10, h1 = 190, top2 = 225, h2 = 90;
  const X = (t) => L + ((t - tStart) / span) * (w - L - R);
  // visible rows, thinned to about two per pixel
  let lo = 0;
  while (lo < rows.length && rows[lo][0] < tStart) lo++;
  const vis = rows.slice(lo);
  const stride = Math.max(1, Math.floor(vis.length / ((w - L - R) * 2)));
  let maxUa = 1000;
  for (const r of vis) maxUa = Math.max(maxUa, r[C.target_ua], r[C.true_ua], r[C.measured_ua], r[C.set_ua]);
  maxUa = Math.ceil((maxUa * 1.1) / 5000) * 5000;
  let maxLoad = 10000;
  for (const r of vis) if (r[C.load_ohm] > maxLoad) maxLoad = r[C.load_ohm];
  maxLoad = Math.min(Math.ceil(maxLoad / 10000) * 10000, 100000);
  const Y1 = (ua) => top1 + h1 - (ua / maxUa) * h1;
  const Y2 = (mv) => top2 + h2 - (mv / 62000) * h2;
  const Y3 = (ohm) => top2 + h2 - (Math.min(ohm, maxLoad) / maxLoad) * h2;
  // axes and grid
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#e3e6ea";
  ctx.fillStyle = "#6a7383";
  ctx.lineWidth = 1;
  for (let ua = 0; ua <= maxUa; ua += maxUa / 5) {
    ctx.beginPath(); ctx.moveTo(L, Y1(ua)); ctx.lineTo(w - R, Y1(ua)); ctx.stroke();
    ctx.fillText((ua / 1000).toFixed(0) + " mA", 4, Y1(ua) + 4);
  }
  for (const mv of [0, 30000, 60000]) {
    ctx.beginPath(); ctx.moveTo(L, Y2(mv)); ctx.lineTo(w - R, Y2(mv)); ctx.stroke();
    ctx.fillText(mv / 1000 + " V", 10, Y2(mv) + 4);
  }
  ctx.fillText((maxLoad / 1000).toFixed(0) + " kOhm", w - R + 4, Y3(maxLoad) + 8);
  ctx.fillText("0 kOhm", w - R + 4, Y3(0));
  const nT = 6;
  for (let i = 0; i <= nT; i++) {
    const t = tStart + (span * i) / nT;
    // under a minute shown: tenths of a second, so the labels differ
    const lbl = span < 60000 ? clock(t) + "." + Math.floor((t % 1000) / 100) : clock(t);
    ctx.fillText(lbl, X(t) - 20, h - 4);
  }
  // events: vertical markers across both plots
  for (const ev of evs) {
    if (ev[0] < tStart || ev[0] > tEnd) continue;
    const c = COLORS[ev[1]] || (ev[1] === "polarity" ? COLORS.reverse : null);
    if (!c || ev[1] === "state") continue;
    ctx.strokeStyle = c;
    ctx.setLineDash(ev[1] === "panel" ? [2, 3] : []);
    ctx.lineWidth = ev[1] === "fault" ? 2.5 : 1;
    ctx.beginPath(); ctx.moveTo(X(ev[0]), top1); ctx.lineTo(X(ev[0]), top2 + h2); ctx.stroke();
  }
  ctx.setLineDash([]);
  // limited stretches shaded
  ctx.fillStyle = "rgba(224,64,251,0.10)";
  let ls = null;
  for (const r of vis) {
    if (r[C.limited_ua] >= 0 && ls === null) ls = r[0];
    if (r[C.limited_ua] < 0 && ls !== null) { ctx.fillRect(X(ls), top1, X(r[0]) - X(ls), h1); ls = null; }
  }
  if (ls !== null) ctx.fillRect(X(ls), top1, X(tEnd) - X(ls), h1);
  const line = (col, yf, color, dash, width) => {
    ctx.strokeStyle = color;
    ctx.setLineDash(dash || []);
    ctx.lineWidth = width || 1.5;
    ctx.beginPath();
    let started = false;
    for (let i = 0; i < vis.length; i += stride) {
      const r = vis[i];
      const v = r[C[col]];
      if (v < 0 || (col !== "true_ua" && col !== "electrode_mv" && r[C.state] < 0)) { started = false; continue; }
      const x = X(r[0]), y = yf(v);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    }
    ctx.stroke();
    ctx.setLineDash([]);
  };
  line("target_ua", Y1, COLORS.target, [6, 4]);
  line("set_ua", Y1, COLORS.set);
  line("measured_ua", Y1, COLORS.measured);
  line("true_ua", Y1, COLORS.true, null, 2);
  line("electrode_mv", Y2, COLORS.mv);
  line("load_ohm", Y3, COLORS.load);
  // replay cursor
  if (P.replay) {
    ctx.strokeStyle = "#000";
    ctx.beginPath(); ctx.moveTo(X(P.replay.t), top1); ctx.lineTo(X(P.replay.t), top2 + h2); ctx.stroke();
  }
  const last = vis[vis.length - 1];
  ctx.fillStyle = "#1c2330";
  ctx.fillText("dose so far " + (last[C.dose_uas] / 60000).toFixed(1) + " mA.min", w - R - 160, top1 + 12);
  cv.dataset.rows = vis.length;
}
$("window").addEventListener("change", scheduleChart);
window.addEventListener("resize", scheduleChart);

// --- the patient ----------------------------------------------------------------------------
document.querySelectorAll(".tray").forEach((el) => {
  el.addEventListener("click", () => {
    const side = el.dataset.side;
    send("patient", { do: "tray", side: side, in: el.classList.contains("out") });
  });
});
$("p-splash").addEventListener("click", () => send("patient", { do: "splash" }));
$("p-slow").addEventListener("click", () => send("patient", { do: "slow_lift", side: "right", s: 3 }));
$("p-sweat").addEventListener("click", () => send("patient", { do: "sweat" }));
$("p-soft").addEventListener("click", (e) => send("patient", { do: "soft_water", on: !e.target.classList.contains("on") }));
$("p-cut").addEventListener("click", (e) => send("patient", { do: "cut", on: !e.target.classList.contains("on") }));
$("p-onetray").addEventListener("click", (e) => send("patient", { do: "one_tray", on: !e.target.classList.contains("on") }));
$("p-reset").addEventListener("click", () => send("patient", { do: "reset" }));
$("scenario").addEventListener("change", (e) => send("scenario", { name: e.target.value }));
$("usbtoggle").addEventListener("click", () => send("usb", { host_present: !(P.snap && P.snap.board.usb_host_present) }));
$("take").addEventListener("click", () => send("take"));

// --- training -------------------------------------------------------------------------------
document.querySelectorAll('input[name="accel"]').forEach((r) => r.addEventListener("change", () => send("accel", { x: Number(r.value) })));
$("inject").addEventListener("click", () => send("fault", { id: $("faultsel").value }));
$("repair").addEventListener("click", () => send("clear_faults"));

try { P.done = JSON.parse(localStorage.getItem("ionto-exercises-done") || "{}"); } catch (e) { P.done = {}; }

function renderExercises() {
  const ol = $("exercises");
  ol.innerHTML = "";
  for (const ex of P.exercises) {
    const li = document.createElement("li");
    li.id = "ex-" + ex.name;
    li.classList.toggle("done", !!P.done[ex.name]);
    const t = document.createElement("span");
    t.className = "ex-title";
    t.textContent = ex.title + " ";
    li.appendChild(t);
    const b = document.createElement("button");
    b.className = "tiny ex-start";
    b.textContent = P.ex && P.ex.name === ex.name ? "restart" : "start";
    b.addEventListener("click", () => startExercise(ex));
    li.appendChild(b);
    if (P.ex && P.ex.name === ex.name) {
      const p = document.createElement("div");
      p.className = "hint";
      p.textContent = ex.brief;
      li.appendChild(p);
      const ul = document.createElement("ul");
      ex.steps.forEach((s, i) => {
        const si = document.createElement("li");
        si.textContent = s.text;
        if (i < P.ex.step) si.className = "ok";
        else if (i === P.ex.step) si.className = "now";
        ul.appendChild(si);
        if (i === P.ex.step && s.quiz) {
          const q = document.createElement("div");
          q.className = "quiz";
          s.quiz.choices.forEach((c, k) => {
            const qb = document.createElement("button");
            qb.textContent = c;
            qb.addEventListener("click", () => {
              if (k === s.quiz.answer) { advance(); } else { qb.disabled = true; banner("Not quite: " + (s.quiz.why || "look at the chart and the display again."), 5000); }
            });
            q.appendChild(qb);
          });
          ul.appendChild(q);
        }
      });
      li.appendChild(ul);
    }
    ol.appendChild(li);
  }
}

async function startExercise(ex) {
  const s = ex.setup || {};
  if (s.scenario) await send("scenario", { name: s.scenario });
  if (s.usb !== undefined) await send("usb", { host_present: s.usb });
  if (s.accel !== undefined) await send("accel", { x: s.accel });
  await send("patient", { do: "reset" });
  P.ex = { name: ex.name, def: ex, step: 0, since: P.snap ? P.snap.t_ms : 0, seen: [] };
  renderExercises();
}

function cond(w, m) {
  const u = m.unit || {};
  const evs = P.events.filter((e) => e[0] >= P.ex.since);
  for (const [k, v] of Object.entries(w)) {
    let ok = true;
    if (k === "state") ok = [].concat(v).includes(u.state_name);
    else if (k === "preset") ok = m.app && m.app.preset === v;
    else if (k === "fault") ok = !!u.fault_words && (v === true || u.fault_words.name === v || [].concat(v).includes(u.fault_words.name));
    else if (k === "limited") ok = (u.limited_ua >= 0) === v;
    else if (k === "usb") ok = m.board.usb_host_present === v;
    else if (k === "contact") ok = m.patient && m.patient.contact === v;
    else if (k === "event") ok = evs.some((e) => e[1] === v || e[2] === v);
    else if (k === "refuse") ok = !!m.app && !!P.faultWords[m.app.refuse] && P.faultWords[m.app.refuse].name === v;
    else if (k === "board_fault") ok = v ? m.board.faults.length > 0 || m.board.hw_limit : m.board.faults.length === 0 && !m.board.hw_limit;
    else if (Array.isArray(v)) ok = u[k] !== undefined && u[k] >= v[0] && u[k] <= v[1];
    else ok = u[k] === v;
    if (!ok) return false;
  }
  return true;
}

function advance() {
  const ex = P.ex.def;
  P.ex.step++;
  P.ex.since = P.snap ? P.snap.t_ms : P.ex.since;
  const next = ex.steps[P.ex.step];
  if (next && next.inject) send("fault", { id: next.inject });
  if (P.ex.step >= ex.steps.length) {
    P.done[ex.name] = true;
    try { localStorage.setItem("ionto-exercises-done", JSON.stringify(P.done)); } catch (e) { /* private mode */ }
    send("exercise", { text: "exercise done: " + ex.title });
    P.ex = null;
  }
  renderExercises();
}

function checkExercise(m) {
  if (!P.ex || P.replay || !m.unit) return;
  const s = P.ex.def.steps[P.ex.step];
  if (s && !s.quiz && s.when && cond(s.when, m)) advance();
}

// --- share and replay -----------------------------------------------------------------------
$("save").addEventListener("click", async () => {
  const r = await fetch("/record");
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "ionto-panel-record-" + new Date().toISOString().replace(/[:.]/g, "-") + ".json";
  document.body.appendChild(a);
  a.click();
  a.remove();
});

$("load").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  if (!f) return;
  let rec;
  try { rec = JSON.parse(await f.text()); } catch (err) { banner("Not a panel record: " + err, 6000); return; }
  if (!rec || rec.format !== "ionto-panel-record" || !Array.isArray(rec.samples)) { banner("Not a panel record (expected format ionto-panel-record)", 6000); return; }
  startReplay(rec, f.name);
  e.target.value = "";
});

function startReplay(rec, name) {
  rec.columns.forEach((c, i) => { C[c] = i; });
  const ts = rec.samples.map((r) => r[0]).concat(rec.frames.map((f) => f[0]));
  rec.t0 = Math.min(...ts);
  rec.t1 = Math.max(...ts);
  rec.t = rec.t0;
  P.replay = rec;
  document.body.classList.add("replaying");
  document.body.dataset.replay = "1";
  $("replaybar").hidden = false;
  $("replayname").textContent = name + " · " + rec.samples.length + " samples, " + rec.frames.length + " frames, " + rec.events.length + " events";
  $("events").innerHTML = "";
  rec.events.forEach(addEventLine);
  seek(rec.t0);
}

function seek(t) {
  const rec = P.replay;
  rec.t = Math.max(rec.t0, Math.min(rec.t1, t));
  $("rslider").value = Math.round(((rec.t - rec.t0) / Math.max(1, rec.t1 - rec.t0)) * 1000);
  $("rtime").textContent = clock(rec.t);
  let fr = null;
  for (const f of rec.frames) { if (f[0] <= rec.t) fr = f; else break; }
  if (fr) drawDisplay(fr);
  let row = null;
  for (const r of rec.samples) { if (r[0] <= rec.t) row = r; else break; }
  if (row) {
    const u = {};
    rec.columns.forEach((c, i) => { u[c] = row[i]; });
    u.state_name = u.state >= 0 ? rec.states[u.state] : "OFF";
    u.fault_words = rec.fault_words[String(u.fault)] || null;
    readout(u, rec.t);
  }
  scheduleChart();
}

let playTimer = null;
$("rslider").addEventListener("input", (e) => { const r = P.replay; seek(r.t0 + (Number(e.target.value) / 1000) * (r.t1 - r.t0)); });
$("rplay").addEventListener("click", () => {
  if (playTimer) { clearInterval(playTimer); playTimer = null; $("rplay").textContent = "Play"; return; }
  $("rplay").textContent = "Pause";
  playTimer = setInterval(() => {
    const r = P.replay;
    if (!r || r.t >= r.t1) { clearInterval(playTimer); playTimer = null; $("rplay").textContent = "Play"; return; }
    seek(r.t + 1000); // 10x: one second of the record every 100 ms
  }, 100);
});
$("rlive").addEventListener("click", () => {
  if (playTimer) { clearInterval(playTimer); playTimer = null; }
  P.replay = null;
  delete document.body.dataset.replay;
  document.body.classList.remove("replaying");
  $("replaybar").hidden = true;
  P.columns.forEach((c, i) => { C[c] = i; });
  $("events").innerHTML = "";
  P.events.forEach(addEventLine);
  if (P.frame) drawDisplay(P.frame);
  scheduleChart();
});

connect();
