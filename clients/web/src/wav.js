// wav.js — PCM for voice replies: resampling Web Audio's float samples to 16 kHz and writing a RIFF/WAVE file of
// 16-bit little-endian mono PCM, the one audio form the host takes from a browser (DESIGN.md §7; Chromium's
// MediaRecorder only makes WebM/Opus).

export const VOICE_RATE = 16000;

/**
 * Float samples at `from` Hz resampled to `to` Hz. Downsampling averages each output sample's window of input
 * (a box filter: enough against aliasing for speech at these rates); upsampling interpolates linearly.
 */
export function resample(input, from, to) {
  if (from === to) return Float32Array.from(input);
  const n = Math.floor((input.length * to) / from);
  const out = new Float32Array(n);
  const step = from / to;
  if (step > 1) {
    for (let i = 0; i < n; i++) {
      const a = Math.floor(i * step);
      const b = Math.min(input.length, Math.floor((i + 1) * step));
      let s = 0;
      for (let j = a; j < b; j++) s += input[j];
      out[i] = b > a ? s / (b - a) : 0;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const x = i * step;
      const a = Math.floor(x);
      const f = x - a;
      out[i] = (input[a] ?? 0) * (1 - f) + (input[a + 1] ?? input[a] ?? 0) * f;
    }
  }
  return out;
}

/** A WAV file (RIFF, fmt PCM 16-bit mono at `rate`, data) of float samples in [-1, 1] (clipped beyond). */
export function wavEncode(samples, rate = VOICE_RATE) {
  const dataLen = samples.length * 2;
  const buf = new ArrayBuffer(44 + dataLen);
  const v = new DataView(buf);
  const str = (o, s) => {
    for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i));
  };
  str(0, 'RIFF');
  v.setUint32(4, 36 + dataLen, true);
  str(8, 'WAVE');
  str(12, 'fmt ');
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); // byte rate
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  str(36, 'data');
  v.setUint32(40, dataLen, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + 2 * i, s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff), true);
  }
  return new Uint8Array(buf);
}

/** Joins Float32Array chunks into one. */
export function concat(chunks) {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Root-mean-square level of samples, 0..1. */
export function rms(samples) {
  let s = 0;
  for (let i = 0; i < samples.length; i++) s += samples[i] * samples[i];
  return samples.length ? Math.sqrt(s / samples.length) : 0;
}
