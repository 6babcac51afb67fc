#!/bin/sh
# fuzz.sh — `make fuzz`: builds the fuzz harnesses of tests/fuzz/ with
# clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer, and
# runs each for FUZZ_SECONDS (default 60) on its seed corpus, keeping what
# it finds new in out/fuzz/NAME/corpus/. Prints each harness's executions;
# a finding (crash-*, leak-*, oom-*, timeout-*) is left in
# out/fuzz/NAME/findings/ and the script exits 1.
set -eu
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build-fuzz}

# clang and its libFuzzer runtime, from Debian's packages, when missing.
missing=""
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "fuzz: installing$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMLPC_FUZZ=ON -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined \
-fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build "$build" -j2 --target fuzz_model fuzz_idx fuzz_weights fuzz_data

status=0
for h in model idx weights data; do
  case $h in
    model) seeds="tests/fuzz/model tests/errors tests/valid models tests/models" ;;
    *) seeds="tests/fuzz/$h" ;;
  esac
  out=out/fuzz/$h
  mkdir -p "$out/corpus" "$out/findings"
  # -rss_limit_mb: the IDX and NumPy readers may legitimately hold a 4 GiB file.
  if ! "$build/tests/fuzz_$h" -max_total_time="$secs" -print_final_stats=1 \
      -rss_limit_mb=6144 -artifact_prefix="$out/findings/" "$out/corpus" $seeds \
      >"$out/log" 2>&1; then
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  found=$(ls "$out/findings" | wc -l)
  echo "fuzz_$h: ${runs:-?} executions in ${secs} s, $(ls "$out/corpus" | wc -l) inputs found so far" \
       "inputs, $found finding(s) (log: $out/log)"
done
exit $status
