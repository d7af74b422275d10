#!/usr/bin/env bash
# Build the unit's rp2 MicroPython image (RPI_PICO, RP2040) from pinned sources, offline.
#
#   IONTO_MIRRORS=/dir/of/git/mirrors  hw/rp2/build.sh        (or: make rp2-image)
#
# IONTO_MIRRORS holds git repositories (bare mirrors are fine) named owner+name/repo:
#   micropython+micropython  raspberrypi+pico-sdk  hathach+tinyusb  Mbed-TLS+mbedtls
#   micropython+micropython-lib  raspberrypi+picotool
# Scratch (sources, build trees, picotool): IONTO_RP2_WORK, default build/rp2 in this checkout
# (git-ignored; kept between runs so a rebuild after a firmware change takes a minute, not ten).
# Needs, from Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi cmake build-essential git python3.
#
# Writes hw/rp2/image/: firmware.uf2 (the image the tests and the emulated Pico run), nm.txt
# (its symbols, for cycle profiles), PROVENANCE.json (pinned commits, toolchain, configuration,
# SHA-256 of the image and of every frozen source), LICENCES/ (notices of what the image holds).
set -euo pipefail

# --- pins: what the image is made of --------------------------------------------------------
MPY_COMMIT=af47daf3b02b9f391cced3fc2ac6e9bf688b4639      # v1.29.0-preview-585 (mpy v6.3)
PICO_SDK_COMMIT=a1438dff1d38bd9c65dbd693f0e5db4b9ae91779 # 2.2.0
TINYUSB_COMMIT=aa0fc2e08f1c2dd6f026a431e8989357fbb4c5bf
MBEDTLS_COMMIT=0bebf8b8c7f07abe3571ded48a11aa907a1ffb20  # v3.6.6
MPYLIB_COMMIT=8380c7bb8f9e5e5260e9539156742925e00366b2
PICOTOOL_TAG=2.2.0
BOARD=RPI_PICO
JOBS=${JOBS:-2}

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$HERE/image"
: "${IONTO_MIRRORS:?set IONTO_MIRRORS to the directory of git mirrors (owner+name/repo)}"
MIRRORS=$(cd "$IONTO_MIRRORS" && pwd)
WORK=${IONTO_RP2_WORK:-$ROOT/build/rp2}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

missing=()
for tool in arm-none-eabi-gcc cmake make git python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/lib ] || missing+=(libnewlib-arm-none-eabi)
if [ ${#missing[@]} -gt 0 ]; then
  echo "build.sh: missing ${missing[*]}: apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi cmake build-essential git" >&2
  exit 1
fi
for m in micropython+micropython raspberrypi+pico-sdk hathach+tinyusb Mbed-TLS+mbedtls micropython+micropython-lib raspberrypi+picotool; do
  [ -d "$MIRRORS/$m/repo" ] || { echo "build.sh: no mirror $MIRRORS/$m/repo" >&2; exit 1; }
done
log() { echo "build.sh: $*"; }

# --- sources: MicroPython and the submodules the rp2 port needs, all from the mirrors --------
MPY="$WORK/micropython"
[ -d "$MPY/.git" ] || git clone -q --no-checkout "$MIRRORS/micropython+micropython/repo" "$MPY"
cd "$MPY"
git checkout -q -f "$MPY_COMMIT"
git config submodule.lib/pico-sdk.url "$MIRRORS/raspberrypi+pico-sdk/repo"
git config submodule.lib/tinyusb.url "$MIRRORS/hathach+tinyusb/repo"
git config submodule.lib/mbedtls.url "$MIRRORS/Mbed-TLS+mbedtls/repo"
git config submodule.lib/micropython-lib.url "$MIRRORS/micropython+micropython-lib/repo"
git -c protocol.file.allow=always submodule update --init -q lib/tinyusb lib/micropython-lib
# pico-sdk and mbedtls: sparse checkouts without files the build never reads and some mirrors
# lack (pico-sdk's RP2350.svd, mbedtls's test suites).
sparse() {  # path, commit, excluded pattern
  git -c protocol.file.allow=always submodule update --init -q "$1" 2>/dev/null || true
  ( cd "$1" && git sparse-checkout set --no-cone '/*' "!$3" && git checkout -q "$2" )
}
sparse lib/pico-sdk "$PICO_SDK_COMMIT" /src/rp2350/hardware_regs/RP2350.svd
sparse lib/mbedtls "$MBEDTLS_COMMIT" /tests/
check() {  # path, expected commit
  local have; have=$(git -C "$1" rev-parse HEAD)
  [ "$have" = "$2" ] || { echo "build.sh: $1 is at $have, pinned $2" >&2; exit 1; }
}
check lib/pico-sdk "$PICO_SDK_COMMIT"; check lib/tinyusb "$TINYUSB_COMMIT"
check lib/mbedtls "$MBEDTLS_COMMIT"; check lib/micropython-lib "$MPYLIB_COMMIT"

# Our configuration of the VM (hw/rp2/README.md says why): applied to a clean py/ every build.
git checkout -q -- py
for p in "$HERE"/patches/*.patch; do git apply "$p"; done

# --- picotool: only the host tool that turns the ELF into a UF2 (no libusb, so the SDK never
# downloads it) --------------------------------------------------------------------------------
if [ ! -x "$WORK/picotool-inst/picotool/picotool" ]; then
  log "picotool $PICOTOOL_TAG"
  [ -d "$WORK/picotool/.git" ] || git clone -q "$MIRRORS/raspberrypi+picotool/repo" "$WORK/picotool"
  git -C "$WORK/picotool" checkout -q "$PICOTOOL_TAG"
  cmake -S "$WORK/picotool" -B "$WORK/picotool/build" -DPICO_SDK_PATH="$MPY/lib/pico-sdk" \
    -DPICOTOOL_NO_LIBUSB=1 -DPICOTOOL_FLAT_INSTALL=1 -DCMAKE_INSTALL_PREFIX="$WORK/picotool-inst" >/dev/null
  nice -n 10 make -C "$WORK/picotool/build" -j"$JOBS" >/dev/null
  make -C "$WORK/picotool/build" install >/dev/null
fi
export picotool_ROOT="$WORK/picotool-inst"

# --- the image -----------------------------------------------------------------------------
log "mpy-cross"
nice -n 10 make -C mpy-cross -j"$JOBS" >/dev/null
BUILD_DIR="build-$BOARD-ionto"
log "firmware ($BOARD, frozen manifest hw/rp2/manifest.py): log in $WORK/firmware.log"
# Do NOT pass CMAKE_ARGS on this command line: it replaces the port Makefile's own and silently
# drops FROZEN_MANIFEST (the stock _boot.py, which formats a damaged flash, would be frozen).
nice -n 10 make -C ports/rp2 -j"$JOBS" BOARD="$BOARD" BUILD="$BUILD_DIR" \
  FROZEN_MANIFEST="$HERE/manifest.py" >"$WORK/firmware.log" 2>&1 \
  || { tail -30 "$WORK/firmware.log" >&2; exit 1; }
B="$MPY/ports/rp2/$BUILD_DIR"
for m in _boot fsmount; do
  [ -f "$B/frozen_mpy/$m.mpy" ] || { echo "build.sh: $m.mpy not frozen: the manifest was not used" >&2; exit 1; }
done

mkdir -p "$OUT"
cp "$B/firmware.uf2" "$OUT/firmware.uf2"
arm-none-eabi-nm -n -S "$B/firmware.elf" >"$OUT/nm.txt"
python3 "$HERE/provenance.py" write --elf "$B/firmware.elf" --mpy "$MPY" --gcc "$(arm-none-eabi-gcc --version | head -1)" \
  --picotool "$PICOTOOL_TAG"
log "$(cd "$OUT" && sha256sum firmware.uf2)"
