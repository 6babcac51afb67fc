#!/bin/sh
# setup.sh — installs what the benchmark needs and mlpc does not: Debian's
# PyTorch and OpenBLAS (the baseline and the sgemm roofline). Idempotent;
# does nothing when both are present.
set -eu

missing=""
for p in python3-torch libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bench: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
