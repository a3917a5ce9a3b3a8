// wav.test.mjs — the WAV writer and resampler of voice replies (src/wav.js): the RIFF header a WAV reader (the host's
// libsndfile-style parser, Python's wave module) expects, sample values and clipping, 48 kHz → 16 kHz.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { concat, resample, rms, wavEncode } from '../src/wav.js';

test('header: RIFF/WAVE, PCM 16-bit mono 16 kHz, data length', () => {
  const w = wavEncode(new Float32Array([0, 0.5, -0.5, 1, -1, 2, -2]));
  const v = new DataView(w.buffer);
  const str = (o, n) => String.fromCharCode(...w.subarray(o, o + n));
  assert.equal(w.length, 44 + 14);
  assert.equal(str(0, 4), 'RIFF');
  assert.equal(v.getUint32(4, true), 36 + 14);
  assert.equal(str(8, 4), 'WAVE');
  assert.equal(str(12, 4), 'fmt ');
  assert.equal(v.getUint32(16, true), 16);
  assert.equal(v.getUint16(20, true), 1);
  assert.equal(v.getUint16(22, true), 1);
  assert.equal(v.getUint32(24, true), 16000);
  assert.equal(v.getUint32(28, true), 32000);
  assert.equal(v.getUint16(32, true), 2);
  assert.equal(v.getUint16(34, true), 16);
  assert.equal(str(36, 4), 'data');
  assert.equal(v.getUint32(40, true), 14);
  const s = [0, 1, 2, 3, 4, 5, 6].map((i) => v.getInt16(44 + 2 * i, true));
  assert.deepEqual(s, [0, 16384, -16384, 32767, -32768, 32767, -32768]);
});

test("Python's wave module reads it back", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-wav-'));
  try {
    const tone = new Float32Array(16000).map((_, i) => 0.25 * Math.sin((2 * Math.PI * 440 * i) / 16000));
    writeFileSync(join(dir, 'a.wav'), wavEncode(tone));
    let out;
    try {
      out = execFileSync('python3', ['-c', 'import wave,sys; w=wave.open(sys.argv[1]); print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())', join(dir, 'a.wav')]);
    } catch (e) {
      if (e.code === 'ENOENT') return t.skip('python3 is not installed');
      throw e;
    }
    assert.equal(out.toString().trim(), '1 2 16000 16000');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('48 kHz to 16 kHz keeps a 440 Hz tone and its level, drops a 15 kHz one', () => {
  const n = 48000;
  const low = new Float32Array(n).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / 48000));
  const high = new Float32Array(n).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 15000 * i) / 48000));
  const a = resample(low, 48000, 16000);
  const b = resample(high, 48000, 16000);
  assert.equal(a.length, 16000);
  assert.ok(Math.abs(rms(a) - rms(low)) < 0.01, `440 Hz level ${rms(a)} vs ${rms(low)}`);
  assert.ok(rms(b) < 0.1 * rms(high), `15 kHz leaks through: ${rms(b)}`);
  // a 440 Hz sine at 16 kHz crosses zero about 880 times a second
  let zc = 0;
  for (let i = 1; i < a.length; i++) if ((a[i - 1] < 0) !== (a[i] < 0)) zc++;
  assert.ok(Math.abs(zc - 880) < 10, `zero crossings ${zc}`);
  assert.deepEqual(resample(new Float32Array([1, 2]), 16000, 16000), new Float32Array([1, 2]));
  assert.equal(resample(new Float32Array(100), 8000, 16000).length, 200);
});

test('concat joins chunks in order', () => {
  assert.deepEqual(concat([new Float32Array([1, 2]), new Float32Array([]), new Float32Array([3])]), new Float32Array([1, 2, 3]));
});
