// The emulated Pico: the unit's rp2 image on rp2040js, with the reference board's electronics
// at its pins. Started by host_tools/ionto/pico.py (`ionto pico`), which owns everything else.
// One file on purpose (a little over 500 lines): node runs it as is, with no bundler or build
// step, and the board's electronics live in Python (hw/rp2/picoboard.py), not here.
//
//   node pico.mjs --image firmware.uf2 --bootrom bootrom-b1.bin --flash-file fs.img --board JSON
//                 [--reset-reason 0|1|2] [--scratch hex,hex,...] [--serial HEX16] [--flash-timing 1|0]
//                 [--i2c-timing 1|0] [--profile out.txt --syms nm.txt]
//
// File descriptors (opened by the parent):
//   0     model replies from the board process, read synchronously (one line per request)
//   1     the USB serial port's device->host bytes (the REPL's output)
//   2     log lines
//   3     host->device bytes for the USB serial port (--fd-in N: another)
//   4     requests and notes to the board process (text lines, below; --fd-req N: another)
// The board process (hw/rp2/picoboard.py) hosts the virtual unit's models (plant, INA219,
// SSD1306): one plant for both targets. Every line starts with the emulated time in us:
//   T p PIN LEVEL          an output pin changed (enable, polarity, gate as a plain pin)
//   T m PIN EN FREQ DUTY   a PWM output's state changed (setpoint, gate)
//   T w ADDR HEX           an I2C write transaction to ADDR ended (STOP or repeated START)
//   T r ADDR N       ->    HEX: N bytes the device at ADDR answers to a read
//   T a CH           ->    12-bit ADC reading of channel CH
//   T t              ->    (nothing): a poll, every emulated ms with the output enabled, else 10 ms
//   T j JSON               a measurement window closed (GP22 fell): I2C use inside it
//   T x CODE               this run ends (CODE 3: watchdog reset; 0: stopped)
// Every reply line ends with ";" and the input levels the board wants driven now
// ("PIN=L,PIN=L"; buttons, limiter flag, VBUS sense), applied before the CPU goes on;
// "iADDR=0" / "iADDR=1": the I2C device at ADDR stops / starts acknowledging (a fault).
//
// Time: rp2040js executes Cortex-M0+ instructions with their cycle counts at a fixed 125 MHz;
// time.ticks_us() on the chip reads the emulated TIMER. The XIP cache is not modelled (flash
// costs like SRAM), so emulated time is a lower bound for a real Pico (hw/rp2/README.md).
import fs from 'fs';
import net from 'net';
import { Simulator, USBCDC, I2CMode, ConsoleLogger, LogLevel } from 'rp2040js';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith('--')) {
    const v = i + 1 < process.argv.length && !process.argv[i + 1].startsWith('--') ? process.argv[++i] : '1';
    args[a.slice(2)] = v;
  }
}
const log = (s) => fs.writeSync(2, `[pico] ${s}\n`);
const BOARD = JSON.parse(args.board);
const I2C_TIMING = (args['i2c-timing'] ?? '1') !== '0';
const FLASH_TIMING = (args['flash-timing'] ?? '1') !== '0';
const CYCLE_NS = 8; // 125 MHz
const DEBUG = !!args.debug;

const sim = new Simulator();
const mcu = sim.rp2040;
mcu.logger = new ConsoleLogger(LogLevel.Error);
const clock = mcu.clock;
const nowUs = () => Math.floor(clock.nanos / 1000);
{
  const rom = fs.readFileSync(args.bootrom);
  mcu.loadBootrom(new Uint32Array(rom.buffer, rom.byteOffset, rom.length / 4));
}

// --- the image -------------------------------------------------------------------------------
{
  const data = fs.readFileSync(args.image);
  let n = 0;
  for (let off = 0; off + 512 <= data.length; off += 512) {
    if (data.readUInt32LE(off) !== 0x0a324655 || data.readUInt32LE(off + 4) !== 0x9e5d5157) continue;
    if (data.readUInt32LE(off + 8) & 1) continue; // "not main flash"
    const addr = data.readUInt32LE(off + 12);
    mcu.flash.set(data.subarray(off + 32, off + 32 + data.readUInt32LE(off + 16)), addr - 0x10000000);
    n++;
  }
  if (!n) throw new Error(`${args.image}: no UF2 blocks`);
}

// --- the board process: synchronous requests -----------------------------------------------
const OUT = Number(args['fd-req'] ?? 4);
const IN = 0;
let inBuf = '';
const rbuf = Buffer.alloc(65536);
function note(line) {
  fs.writeSync(OUT, `${nowUs()} ${line}\n`);
}
let askNs = 0n;
let asks = 0;
function ask(line) {
  const t0 = process.hrtime.bigint();
  try {
    return ask1(line);
  } finally {
    askNs += process.hrtime.bigint() - t0;
    asks++;
  }
}
function ask1(line) {
  note(line);
  for (;;) {
    const nl = inBuf.indexOf('\n');
    if (nl >= 0) {
      const reply = inBuf.slice(0, nl);
      inBuf = inBuf.slice(nl + 1);
      const semi = reply.lastIndexOf(';');
      applyInputs(reply.slice(semi + 1));
      return reply.slice(0, semi);
    }
    let n;
    try {
      n = fs.readSync(IN, rbuf, 0, rbuf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) {
      log('board process gone');
      process.exit(1);
    }
    inBuf += rbuf.toString('latin1', 0, n);
  }
}
const gp = mcu.gpio;
function applyInputs(s) {
  if (!s) return;
  for (const kv of s.split(',')) {
    const [p, v] = kv.split('=');
    if (p[0] === 'i') i2cPresent(Number(p.slice(1)), v === '1'); // a device (un)acknowledging
    else gp[Number(p)].setInputValue(v === '1');
  }
}

// --- output pins and PWM -----------------------------------------------------------------------
// Outputs read back what they drive (the board's pull-downs make an undriven output low).
for (const p of BOARD.outputs) {
  let last = -1;
  gp[p].addListener(() => {
    const v = gp[p].outputValue ? 1 : 0;
    if (gp[p].inputValue !== !!v) gp[p].setInputValue(!!v);
    if (v !== last && gp[p].functionSelect !== 4) {
      last = v;
      note(`p ${p} ${v}`);
    }
  });
}
const pwmLast = new Map();
function pwmState(pin) {
  // [enabled, freq, duty_u16] of the PWM at pin (a plain pin: its level as 0 or full duty)
  if (gp[pin].functionSelect !== 4) return [0, 0, gp[pin].outputValue ? 65535 : 0];
  const ch = mcu.pwm.channels[(pin >> 1) & 7];
  const cc = pin & 1 ? ch.cc >>> 16 : ch.cc & 0xffff;
  const top = ch.top + 1;
  const div = Math.max(16, ch.div & 0xfff) / 16;
  const phase = ch.csr & 2 ? 2 : 1;
  const freq = Math.round(125e6 / div / top / phase);
  const en = ch.csr & 1;
  const duty = en ? Math.min(65535, Math.round((Math.min(cc, top) / top) * 65535)) : 0;
  return [en, freq, duty];
}
function pollPwm() {
  for (const p of BOARD.pwm) {
    const s = pwmState(p).join(' ');
    if (pwmLast.get(p) !== s) {
      pwmLast.set(p, s);
      note(`m ${p} ${s}`);
    }
  }
}
for (const p of BOARD.inputs_high) gp[p].setInputValue(true);
for (const p of BOARD.inputs_low) gp[p].setInputValue(false);

// --- ADC: electrode voltage -------------------------------------------------------------------
mcu.adc.onADCRead = (channel) => {
  pollPwm();
  const v = Number(ask(`a ${channel}`));
  // A conversion takes 96 ADC clocks at 48 MHz: 2 us.
  clock.createAlarm(() => mcu.adc.completeADCRead(v, false)).schedule(2000);
};

// --- I2C0: the devices live in the board process; the wire time is the programmed one ----------
const devices = new Set(BOARD.i2c_devices);
function i2cPresent(addr, on) {
  if (on) devices.add(addr);
  else devices.delete(addr);
}
let win = null; // GP22 measurement window
function later(ns, fn) {
  if (!I2C_TIMING) fn();
  else clock.createAlarm(fn).schedule(ns);
}
{
  const i2c = mcu.i2c[BOARD.i2c_id];
  let addr = -1;
  let present = false;
  let wbytes = [];
  let rqueue = [];
  let txStart = 0;
  let txBytes = 0;
  const bitNs = () => ((i2c.sclHighPeriod + i2c.spikelen + 7 + i2c.sclLowPeriod + 1) * 1e9) / 125e6;
  const flushWrite = () => {
    if (present && wbytes.length) note(`w ${addr} ${Buffer.from(wbytes).toString('hex')}`);
    wbytes = [];
  };
  i2c.onStart = (repeated) => {
    flushWrite();
    if (!repeated) {
      txStart = clock.nanos;
      txBytes = 0;
    }
    later(bitNs(), () => i2c.completeStart());
  };
  i2c.onConnect = (address, mode) => {
    addr = address;
    present = devices.has(address);
    rqueue = [];
    if (present && mode === I2CMode.Read) pollPwm();
    later(9 * bitNs(), () => i2c.completeConnect(present));
  };
  i2c.onWriteByte = (value) => {
    if (win && txBytes === 0 && addr === BOARD.ina219_addr && value === BOARD.tick_marker_reg) win.starts.push(txStart);
    txBytes++;
    if (present) wbytes.push(value);
    later(9 * bitNs(), () => i2c.completeWrite(present));
  };
  i2c.onReadByte = () => {
    txBytes++;
    if (present && !rqueue.length) rqueue = [...Buffer.from(ask(`r ${addr} 2`), 'hex')];
    const v = present && rqueue.length ? rqueue.shift() : 0xff;
    later(9 * bitNs(), () => i2c.completeRead(v));
  };
  i2c.onStop = () => {
    flushWrite();
    later(bitNs(), () => {
      i2c.completeStop();
      if (win) {
        const k = '0x' + addr.toString(16);
        const d = (win.dev[k] ??= { tx: 0, bytes: 0, wire_us: 0 });
        d.tx++;
        d.bytes += txBytes;
        d.wire_us += (clock.nanos - txStart) / 1000;
      }
    });
  };
}

// GP22 (unused on the board) high opens a measurement window: I2C transactions per device and
// the loop period seen from the bus (time between the tick's first INA219 register reads).
if (BOARD.window_pin >= 0) {
  const p = BOARD.window_pin;
  gp[p].addListener(() => {
    const v = gp[p].outputValue;
    if (v && !win) win = { t0: clock.nanos, dev: {}, starts: [] };
    else if (!v && win) {
      const w = { span_us: (clock.nanos - win.t0) / 1000, dev: win.dev };
      const st = win.starts;
      if (st.length > 2) {
        const d = [];
        for (let i = 1; i < st.length; i++) d.push((st[i] - st[i - 1]) / 1000);
        d.sort((a, b) => a - b);
        const q = (f) => d[Math.min(d.length - 1, Math.max(0, Math.ceil(d.length * f) - 1))];
        w.tick_period_us = { n: d.length, median: q(0.5), p90: q(0.9), p99: q(0.99), max: d[d.length - 1],
          mean: d.reduce((a, b) => a + b, 0) / d.length };
      }
      win = null;
      note(`j ${JSON.stringify(w)}`);
    }
  });
}

// --- QSPI flash: program and erase (rp2040js only reads) ---------------------------------------
// The boot ROM's flash routines (which MicroPython's rp2.Flash uses through the SDK) force the
// chip select low through IO_QSPI's SS override and clock commands through the SSI data
// register, one byte in for each byte out. A W25Q16JV-like command set is modelled on that
// path: write enable, status, page program, 4/32/64 KiB and chip erase, read, unique ID, and
// the busy time a real chip takes (typical: page 0.4 ms, sector 45 ms, 64 KiB block 150 ms),
// during which the ROM polls the status register: the CPU stalls as on a board. Writes go to
// the XIP image at once (no cache to flush here) and to --flash-file (the filesystem region).
const FLASH_SIZE = mcu.flash.length;
const FS_OFFSET = BOARD.fs_offset;
const fsFile = args['flash-file'];
if (fsFile) mcu.flash.set(fs.readFileSync(fsFile), FS_OFFSET);
const dirty = new Set(); // 4 KiB blocks of the filesystem region to write back
function writeBack() {
  if (!fsFile || !dirty.size) return;
  const fd = fs.openSync(fsFile, 'r+');
  for (const b of [...dirty].sort((a, b) => a - b)) {
    const off = b * 4096;
    fs.writeSync(fd, mcu.flash, FS_OFFSET + off, 4096, off);
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  dirty.clear();
}
const serialBytes = Buffer.from((args.serial ?? 'E6614103E7000000').padStart(16, '0').slice(-16), 'hex');
const flash = {
  forced: false, // chip select driven by software (IO_QSPI override), not by the SSI
  csLow: false,
  cmd: -1,
  n: 0, // bytes since the command
  addr: 0,
  wel: false,
  busyUntil: 0,
  touched(a) {
    if (a >= FS_OFFSET) dirty.add(Math.floor((a - FS_OFFSET) / 4096));
  },
  erase(a, size) {
    a = (a & ~(size - 1)) % FLASH_SIZE;
    mcu.flash.fill(0xff, a, a + size);
    for (let x = a; x < a + size; x += 4096) this.touched(x);
  },
  busy(us) {
    if (FLASH_TIMING) this.busyUntil = clock.nanos + us * 1000;
    this.wel = false;
  },
  skipBusy() {
    // Read while busy: the ROM polls the status register until the busy time ends, a loop of a
    // few dozen instructions the core would run thousands of times (its interrupts are off, and
    // XIP is unusable meanwhile). Emulating each turn cost wall seconds per second of flash work;
    // instead the clock moves on at once to the end of the busy time, or to the next board
    // poll first (the board keeps its pace). The loop ends at the same emulated time, give or
    // take one turn.
    const t = Math.min(this.busyUntil, lastPollNs + pollNs);
    if (t > clock.nanos) clock.tick(t - clock.nanos);
  },
  select(low) {
    if (low === this.csLow) return;
    rx.length = 0;
    if (DEBUG && !low && this.cmd !== 5) log(`flash cmd ${this.cmd.toString(16)} n=${this.n} addr=${this.addr.toString(16)} at ${clock.nanos / 1e6} ms`);
    if (!low) this.end();
    this.csLow = low;
    this.cmd = -1;
    this.n = 0;
  },
  end() {
    // commands that act when the chip select rises
    if (!this.wel) return;
    switch (this.cmd) {
      case 0x20: if (this.n >= 4) { this.erase(this.addr, 4096); this.busy(45_000); } break;
      case 0x52: if (this.n >= 4) { this.erase(this.addr, 32768); this.busy(120_000); } break;
      case 0xd8: if (this.n >= 4) { this.erase(this.addr, 65536); this.busy(150_000); } break;
      case 0xc7:
      case 0x60: this.erase(0, FLASH_SIZE); this.busy(5_000_000); break;
      case 0x02: if (this.n > 4) this.busy(400); break;
      default:
    }
  },
  xfer(b) {
    const i = this.n++;
    if (i === 0) {
      this.cmd = b;
      this.addr = 0;
      if (b === 0x06) this.wel = true;
      else if (b === 0x04) this.wel = false;
      return 0xff;
    }
    switch (this.cmd) {
      case 0x05: // status 1: BUSY, WEL
        if (clock.nanos < this.busyUntil) this.skipBusy();
        return (clock.nanos < this.busyUntil ? 1 : 0) | (this.wel ? 2 : 0);
      case 0x35: // status 2: QE set (boot2 then leaves the status registers alone)
        return 0x02;
      case 0x9f:
        return [0xef, 0x40, 0x15][i - 1] ?? 0xff;
      case 0x4b: // unique ID after 4 dummy bytes: the unit's serial number
        return i >= 5 && i < 13 ? serialBytes[i - 5] : 0xff;
      case 0x03:
      case 0x0b:
        if (i <= 3) {
          this.addr = (this.addr << 8) | b;
          return 0xff;
        }
        if (this.cmd === 0x0b && i === 4) return 0xff;
        return mcu.flash[this.addr++ % FLASH_SIZE];
      case 0x02:
        if (i <= 3) {
          this.addr = (this.addr << 8) | b;
          return 0xff;
        }
        if (this.wel && clock.nanos >= this.busyUntil) {
          // program: bits only go from 1 to 0; the address wraps inside the 256-byte page
          const a = (this.addr & ~0xff) | ((this.addr + i - 4) & 0xff);
          mcu.flash[a % FLASH_SIZE] &= b;
          this.touched(a % FLASH_SIZE);
        }
        return 0xff;
      case 0x20:
      case 0x52:
      case 0xd8:
        if (i <= 3) this.addr = (this.addr << 8) | b;
        return 0xff;
      default:
        return 0xff;
    }
  },
};
// rp2040js leaves IO_QSPI unimplemented; its base class handles the atomic set/clear/xor aliases.
const BasePeripheral = Object.getPrototypeOf(mcu.peripherals[0x40018].constructor);
class IOQSPI extends BasePeripheral {
  constructor(rp2040, name) {
    super(rp2040, name);
    this.regs = new Uint32Array(12);
  }
  readUint32(offset) {
    // CTRL registers read back; STATUS registers (even words) read all ones, as rp2040js
    // answered before this model (the pads' levels are not modelled)
    return offset < 48 && offset & 4 ? this.regs[offset >> 2] : 0xffffffff;
  }
  writeUint32(offset, value) {
    if (offset >= 48) return;
    this.regs[offset >> 2] = value;
    if (offset === 0x0c) {
      // GPIO_QSPI_SS_CTRL: OUTOVER 2 = drive low, 3 = drive high, 0/1 = the SSI's own select
      const over = (value >> 8) & 3;
      flash.forced = over >= 2;
      flash.select(over === 2);
    }
  }
}
if (!args['no-flash-model']) mcu.peripherals[0x40018] = new IOQSPI(mcu, 'IO_QSPI_BASE');
const rx = []; // the SSI's RX FIFO while the flash is selected by software
{
  const ssi = mcu.peripherals[0x18000];
  const rd = ssi.readUint32.bind(ssi);
  const wr = ssi.writeUint32.bind(ssi);
  // With the chip selected by software the FIFOs are modelled: a byte written to DR0 is
  // shifted at once (TX FIFO empty) and its answer waits in the RX FIFO; the ROM's transfer
  // loop paces itself on TXFLR/RXFLR, the SDK's on SR.
  ssi.readUint32 = (offset) => {
    if (flash.forced) {
      if (offset === 0x60) return rx.length ? rx.shift() : 0;
      if (offset === 0x20) return 0; // TXFLR
      if (offset === 0x24) return rx.length; // RXFLR
      if (offset === 0x28) return 0x6 | (rx.length ? 0x8 : 0); // SR: TFNF, TFE, RFNE
    }
    return rd(offset);
  };
  ssi.writeUint32 = (offset, value) => {
    if (offset === 0x60 && flash.forced) {
      rx.push(flash.csLow ? flash.xfer(value & 0xff) : 0xff);
      if (rx.length > 16) rx.shift();
      return;
    }
    wr(offset, value);
  };
}

// --- reset: the parent restarts us with the reason the watchdog keeps -------------------------
{
  const wd = mcu.peripherals[0x40058];
  wd.reason = Number(args['reset-reason'] ?? 0);
  if (args.scratch) args.scratch.split(',').forEach((h, i) => (wd.scratchData[i] = parseInt(h, 16) >>> 0));
  wd.onWatchdogTrigger = () => {
    const scratch = [...wd.scratchData].map((v) => (v >>> 0).toString(16)).join(',');
    finish(3, `${wd.reason} ${scratch}`);
  };
}

// --- USB CDC: the REPL ------------------------------------------------------------------------
const cdc = new USBCDC(mcu.usbCtrl);
const pending = [];
// rp2040js's CDC host completes every OUT transfer the device arms 10 us later, with a
// zero-length packet when it has nothing to send; tinyusb re-arms at once and the CPU spends
// most of its cycles in that interrupt storm. A real host NAKs until it has data: hold the
// armed transfer until there is something to send.
const cdcRead = mcu.usbCtrl.onEndpointRead;
let heldRead = null;
mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
  if (endpoint === cdc.outEndpoint && cdc.txFIFO.empty) {
    heldRead = [endpoint, size];
    return;
  }
  cdcRead(endpoint, size);
};
function pumpHost() {
  while (pending.length && cdc.txFIFO.itemCount < 500) cdc.sendSerialByte(pending.shift());
  if (heldRead && !cdc.txFIFO.empty) {
    const [ep, size] = heldRead;
    heldRead = null;
    cdcRead(ep, size);
  }
}
cdc.onSerialData = (buf) => fs.writeSync(1, buf);
cdc.onDeviceConnected = () => log(`USB connected at ${(clock.nanos / 1e6).toFixed(1)} ms emulated`);
// a socket, not fs.createReadStream: a pipe read parked in the thread pool would hold up exit
const hostIn = new net.Socket({ fd: Number(args['fd-in'] ?? 3), readable: true, writable: false });
hostIn.on('data', (d) => {
  for (const b of d) pending.push(b);
  if (pending.length > 8192) hostIn.pause();
  wake();
});
hostIn.on('end', () => finish(0, 'host side closed'));

// --- run --------------------------------------------------------------------------------------
// The board is polled every emulated millisecond while the output is enabled (the limiter can
// trip, the plant moves), every 10 ms while it is off (buttons, VBUS): each poll is a round
// trip to the board process.
// Asleep (WFI/WFE), the core skips to its next alarm, but never past the next board poll nor the
// end of the slice (where host bytes come in): nothing else can wake it, so the skip changes no
// emulated time. Asleep with no alarm at all (at its REPL, waiting for a key), the chip would
// otherwise race through its idle time as fast as the board answers polls, burning two processes'
// CPU for nothing: then it sleeps at real time (its emulated time no faster than the wall clock
// since it fell asleep) and wakes at once when host bytes arrive.
let lastPollNs = 0;
let pollNs = 10_000_000;
gp[BOARD.outputs[0]].addListener(() => {
  pollNs = gp[BOARD.outputs[0]].outputValue ? 1_000_000 : 10_000_000;
});
let stopped = false;
const wall0 = Date.now();
function finish(code, why) {
  if (stopped) return;
  stopped = true;
  writeBack();
  log(`end ${code} (${why}): ${(clock.nanos / 1e9).toFixed(3)} s emulated in ${((Date.now() - wall0) / 1000).toFixed(1)} s; ${asks} board requests, ${(Number(askNs) / 1e9).toFixed(2)} s`);
  try {
    note(`x ${code} ${why}`);
  } catch (e) {
    /* the board process is gone */
  }
  process.exit(code);
}
function slice() {
  idleTimer = null;
  const core = mcu.core;
  const end = clock.nanos + 4_000_000; // 4 ms emulated per slice, then host I/O
  while (clock.nanos < end && !stopped) {
    if (core.waiting) {
      // asleep (WFI): jump to the next alarm, but not past the next board poll
      const dn = clock.nanosToNextAlarm;
      clock.tick(Math.max(CYCLE_NS, Math.min(dn > 0 ? dn : end - clock.nanos, lastPollNs + pollNs - clock.nanos)));
    }
    else clock.tick(core.executeInstruction() * CYCLE_NS);
    if (clock.nanos - lastPollNs >= pollNs) {
      lastPollNs = clock.nanos;
      pollPwm();
      ask('t');
    }
  }
  pumpHost();
  if (DEBUG && clock.nanos % 1_000_000_000 < 4_100_000) log(`t ${(clock.nanos / 1e9).toFixed(2)} s PC ${mcu.core.PC.toString(16)}`);
  if (pending.length < 4096 && hostIn.isPaused()) hostIn.resume();
  if (dirty.size) writeBack();
  if (stopped) return;
  if (core.waiting && clock.nanosToNextAlarm <= 0 && !pending.length) {
    const wallNs = process.hrtime.bigint();
    if (idleSince === null) idleSince = [wallNs, clock.nanos];
    const aheadMs = (clock.nanos - idleSince[1] - Number(wallNs - idleSince[0])) / 1e6;
    if (aheadMs >= 1) {
      idleTimer = setTimeout(slice, Math.min(aheadMs, 50));
      return;
    }
  } else idleSince = null;
  setImmediate(slice);
}
let idleSince = null; // [wall ns, emulated ns] when the chip fell asleep with nothing scheduled
let idleTimer = null;
function wake() {
  // host bytes for a sleeping chip: the next slice now
  if (idleTimer === null) return;
  clearTimeout(idleTimer);
  idleTimer = null;
  setImmediate(slice);
}
process.on('SIGTERM', () => finish(0, 'SIGTERM'));
process.on('SIGINT', () => finish(0, 'SIGINT'));
mcu.core.PC = 0x10000000;
slice();
