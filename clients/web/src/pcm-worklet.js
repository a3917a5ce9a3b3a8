// pcm-worklet.js — an AudioWorkletProcessor that hands the microphone's samples (first channel, float) to the page in
// chunks of about 0.1 s. Loaded from its own same-origin file (the CSP allows no inline or blob: script).
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(2048);
    this.n = 0;
    this.port.onmessage = (e) => {
      if (e.data === 'flush') {
        this.flush();
        this.port.postMessage('flushed');
      }
    };
  }

  flush() {
    if (this.n > 0) this.port.postMessage(this.buf.slice(0, this.n));
    this.n = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let i = 0; i < ch.length; i++) {
        this.buf[this.n++] = ch[i];
        if (this.n === this.buf.length) this.flush();
      }
    }
    return true;
  }
}

registerProcessor('pcm-capture', PcmCapture);
