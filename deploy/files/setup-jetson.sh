#!/usr/bin/env bash
# setup-jetson.sh: install myoedge as a service on a Jetson with JetPack 6 (L4T R36, TensorRT 10.3).
#
#   sudo deploy/files/setup-jetson.sh --amp-serial FT5XYZ12 [--amp-product 6001] [--prefix /opt/myoedge]
#        [--user myoedge] [--source PATH] [--max-performance] [--dry-run]
#
# What it does, in order (each command is echoed; --dry-run only echoes):
#   1. checks for JetPack 6 and its TensorRT Python bindings (apt package python3-libnvinfer);
#   2. creates the unprivileged system user (groups dialout and video);
#   3. creates a virtualenv with --system-site-packages, so JetPack's TensorRT (installed by apt into
#      the system Python, not available from PyPI for Jetson) is importable, and installs myoedge and
#      pycuda into it;
#   4. installs the udev rule (stable /dev/myoedge-amp, FTDI latency timer 1 ms), the systemd unit and
#      /etc/default/myoedge, and enables the service (it is started by hand once a bundle is in place);
#   5. with --max-performance runs `nvpmodel -m 0` and `jetson_clocks`; otherwise prints them.
set -euo pipefail

PREFIX=/opt/myoedge
SERVICE_USER=myoedge
AMP_SERIAL=""
AMP_PRODUCT=6001
SOURCE=""
MAX_PERF=0
DRY_RUN=0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "setup-jetson.sh: $*" >&2; exit 2; }
run() {
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
        --user) SERVICE_USER="${2:?--user needs a name}"; shift 2 ;;
        --amp-serial) AMP_SERIAL="${2:?--amp-serial needs the adapter serial number}"; shift 2 ;;
        --amp-product) AMP_PRODUCT="${2:?--amp-product needs a USB product id}"; shift 2 ;;
        --source) SOURCE="${2:?--source needs a myoedge checkout or wheel}"; shift 2 ;;
        --max-performance) MAX_PERF=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ "$AMP_PRODUCT" =~ ^[0-9a-fA-F]{4}$ ]] || die "--amp-product must be 4 hex digits, got '$AMP_PRODUCT'"
[[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user must be a valid user name, got '$SERVICE_USER'"
[[ "$AMP_SERIAL" =~ ^[A-Za-z0-9._-]*$ ]] || die "--amp-serial may hold letters, digits, '.', '_' and '-' only"
if [ -z "$SOURCE" ]; then
    SOURCE="$(cd "$HERE/../.." && pwd)"
    [ -f "$SOURCE/pyproject.toml" ] || die "no myoedge checkout around this script; pass --source"
fi
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo), or with --dry-run to see the commands"
fi

echo "== 1. JetPack and TensorRT"
if grep -q "R36" /etc/nv_tegra_release 2>/dev/null; then
    echo "L4T: $(head -n1 /etc/nv_tegra_release)"
else
    echo "warning: /etc/nv_tegra_release does not say R36; this script targets JetPack 6 (L4T R36.x)" >&2
fi
if ! python3 -c 'import tensorrt' 2>/dev/null; then
    if [ "$DRY_RUN" = 0 ]; then
        die "the system python3 cannot import tensorrt: sudo apt install python3-libnvinfer (part of nvidia-jetpack)"
    fi
    echo "warning: the system python3 cannot import tensorrt (sudo apt install python3-libnvinfer)" >&2
fi

echo "== 2. service user '$SERVICE_USER'"
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --home-dir /var/lib/myoedge --create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi
run usermod --append --groups dialout,video "$SERVICE_USER"

echo "== 3. virtualenv $PREFIX/venv (system site packages visible: JetPack's TensorRT)"
run mkdir -p "$PREFIX"
run python3 -m venv --system-site-packages "$PREFIX/venv"
run "$PREFIX/venv/bin/python" -m pip install --upgrade pip
# TensorRT 10.3's bindings are built against numpy 1.x: keep numpy below 2 in this venv.
run "$PREFIX/venv/bin/python" -m pip install "numpy>=1.24,<2" "$SOURCE[edge]"
# pycuda compiles against the CUDA toolkit that JetPack installs under /usr/local/cuda.
export CUDA_ROOT=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH"
run "$PREFIX/venv/bin/python" -m pip install pycuda
run "$PREFIX/venv/bin/python" -c 'import tensorrt, pycuda.driver; print("TensorRT", tensorrt.__version__)'

echo "== 4. udev rule, systemd unit, /etc/default/myoedge"
if [ -z "$AMP_SERIAL" ]; then
    echo "warning: no --amp-serial: edit MYOEDGE_AMP_SERIAL in /etc/udev/rules.d/99-myoedge-amplifier.rules" >&2
    AMP_SERIAL=MYOEDGE_AMP_SERIAL
fi
rules="$(sed -e "s/MYOEDGE_AMP_SERIAL/$AMP_SERIAL/g" -e "s/{idProduct}==\"6001\"/{idProduct}==\"$AMP_PRODUCT\"/g" \
    "$HERE/99-myoedge-amplifier.rules")"
unit="$(sed -e "s#/opt/myoedge#$PREFIX#g" -e "s/^User=myoedge$/User=$SERVICE_USER/" \
    -e "s/^Group=myoedge$/Group=$SERVICE_USER/" "$HERE/myoedge.service")"
echo "+ write /etc/udev/rules.d/99-myoedge-amplifier.rules and /etc/systemd/system/myoedge.service"
printf '%s\n' "$rules" | grep -v -e '^#' -e '^$' | sed 's/^/    /'
if [ "$DRY_RUN" = 0 ]; then
    printf '%s\n' "$rules" > /etc/udev/rules.d/99-myoedge-amplifier.rules
    printf '%s\n' "$unit" > /etc/systemd/system/myoedge.service
    if [ ! -e /etc/default/myoedge ]; then
        printf '%s\n' "# Overrides for myoedge.service (see the Environment= lines in the unit)." \
            "#MYOEDGE_BUNDLE=/var/lib/myoedge/bundle" "#MYOEDGE_UDP=192.168.1.20:9870" \
            "#MYOEDGE_EXTRA_ARGS=" > /etc/default/myoedge
    fi
fi
run udevadm control --reload-rules
run udevadm trigger --subsystem-match=tty --subsystem-match=usb-serial --action=add
run systemctl daemon-reload
run systemctl enable myoedge.service

echo "== 5. power mode and clocks"
if [ "$MAX_PERF" = 1 ]; then
    run nvpmodel -m 0
    run jetson_clocks
else
    cat <<'NOTE'
Not changed (pass --max-performance to run them now):
  sudo nvpmodel -m 0   # mode 0 = the module's highest power mode (MAXN on AGX Orin); check with nvpmodel -q.
                       # Persistent across reboots; some modes ask for a reboot.
  sudo jetson_clocks   # pin CPU, GPU and memory clocks at the mode's maximum: no DVFS ramp-up latency.
                       # Not persistent: add it to a boot-time unit if latency figures must hold after reboot.
NOTE
fi

cat <<NEXT
== next
  copy the model bundle to /var/lib/myoedge/bundle and the subject profile to /var/lib/myoedge/profile.json,
  then build the engine on this Jetson (it is cached in the bundle folder) and start the service:
  sudo chown -R $SERVICE_USER: /var/lib/myoedge
  sudo -u $SERVICE_USER $PREFIX/venv/bin/myoedge build-engine /var/lib/myoedge/bundle   # add --precision fp16 to try fp16
  sudo systemctl start myoedge && journalctl -u myoedge -f
NEXT
