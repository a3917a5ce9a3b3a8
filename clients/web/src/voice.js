// voice.js — hold to talk: records the microphone as 16 kHz mono PCM with Web Audio (an AudioWorklet from its own
// file, else a ScriptProcessorNode) and, where the browser has one, runs its speech recognizer at the same time for a
// transcript. The host takes WAV, not the WebM/Opus of Chromium's MediaRecorder (DESIGN.md §7, §9).
import { concat, resample, rms, VOICE_RATE, wavEncode } from './wav.js';

/* global __WORKLET_URL__ */
const WORKLET_URL = typeof __WORKLET_URL__ === 'string' ? __WORKLET_URL__ : '/assets/pcm-worklet.js';
export const MAX_SECONDS = 60; // 60 s of 16-bit 16 kHz audio is 1.9 MiB: under the protocol's 2 MiB

/** Whether this browser can record at all. */
export function canRecord() {
  return !!(navigator.mediaDevices?.getUserMedia && (window.AudioContext || window.webkitAudioContext));
}

function recognizer() {
  return window.SpeechRecognition || window.webkitSpeechRecognition || null;
}

/** The browser's recognizer, started: {stop(): Promise<{text, error}>, text()} or null when it has none. */
function listen(onText) {
  const SR = recognizer();
  if (!SR) return null;
  let rec;
  try {
    rec = new SR();
  } catch {
    return null;
  }
  let finals = '';
  let interim = '';
  let error = '';
  let ended = false;
  let onEnded = null;
  rec.lang = navigator.language || 'en-US';
  rec.interimResults = true;
  rec.continuous = true;
  rec.maxAlternatives = 1;
  rec.onresult = (ev) => {
    interim = '';
    for (let i = ev.resultIndex ?? 0; i < ev.results.length; i++) {
      const r = ev.results[i];
      const t = r[0]?.transcript ?? '';
      if (r.isFinal) finals += t;
      else interim += t;
    }
    onText((finals + interim).trim());
  };
  rec.onerror = (ev) => {
    error = ev.error || 'error';
  };
  rec.onend = () => {
    ended = true;
    onEnded?.();
  };
  try {
    rec.start();
  } catch (e) {
    return null;
  }
  return {
    stop() {
      return new Promise((resolve) => {
        const done = () => resolve({ text: (finals || interim).trim(), error });
        if (ended) return done();
        onEnded = done;
        setTimeout(done, 2000); // a recognizer that never ends must not hold the reply
        try {
          rec.stop();
        } catch {
          done();
        }
      });
    },
    abort() {
      try {
        rec.abort();
      } catch {
        /* already ended */
      }
    },
  };
}

/**
 * Starts recording. onLevel(0..1) about ten times a second; onText(text) with the recognizer's running transcript.
 * Resolves to {stop(): Promise<{wav, seconds, transcript, recognizerError}>, cancel()}; rejects when the microphone
 * is refused or missing (the error's name says which).
 */
export async function record({ onLevel = () => {}, onText = () => {} } = {}) {
  const AC = window.AudioContext || window.webkitAudioContext;
  let ctx;
  try {
    ctx = new AC({ sampleRate: VOICE_RATE });
  } catch {
    ctx = new AC();
  }
  const chunks = [];
  let node;
  const take = (d) => {
    chunks.push(d);
    onLevel(Math.min(1, rms(d) * 4));
  };
  try {
    await ctx.audioWorklet.addModule(WORKLET_URL);
    node = new AudioWorkletNode(ctx, 'pcm-capture', { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
    node.port.onmessage = (e) => {
      if (e.data instanceof Float32Array) take(e.data);
      else if (e.data === 'flushed') node.onflushed?.();
    };
  } catch {
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => take(new Float32Array(e.inputBuffer.getChannelData(0)));
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (e) {
    ctx.close();
    throw e;
  }
  let src;
  try {
    src = ctx.createMediaStreamSource(stream);
  } catch {
    // a browser that cannot feed a 16 kHz context from the microphone: record at its own rate, resample after
    ctx.close();
    ctx = new AC();
    await ctx.audioWorklet?.addModule(WORKLET_URL).catch(() => {});
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => take(new Float32Array(e.inputBuffer.getChannelData(0)));
    src = ctx.createMediaStreamSource(stream);
  }
  src.connect(node);
  node.connect(ctx.destination); // silent: the processor writes nothing to its output
  if (ctx.state === 'suspended') await ctx.resume();
  const rec = listen(onText);
  const started = performance.now();
  const release = () => {
    for (const t of stream.getTracks()) t.stop();
    try {
      src.disconnect();
      node.disconnect();
    } catch {
      /* already */
    }
    ctx.close();
  };
  return {
    async stop() {
      if (node.port) {
        await new Promise((resolve) => {
          node.onflushed = resolve;
          node.port.postMessage('flush');
          setTimeout(resolve, 300);
        });
      }
      const seconds = (performance.now() - started) / 1000;
      const rate = ctx.sampleRate;
      release();
      const heard = rec ? await rec.stop() : { text: '', error: 'unsupported' };
      let samples = concat(chunks);
      if (rate !== VOICE_RATE) samples = resample(samples, rate, VOICE_RATE);
      if (samples.length > MAX_SECONDS * VOICE_RATE) samples = samples.subarray(0, MAX_SECONDS * VOICE_RATE);
      return { wav: wavEncode(samples, VOICE_RATE), seconds, transcript: heard.text, recognizerError: heard.error };
    },
    cancel() {
      rec?.abort();
      release();
    },
  };
}
