// stack.mjs — the real processes behind the phone app's browser test, in one temp dir on free loopback ports:
// redis-server on a unix socket, corral-fake-push (a Web Push service that decrypts what it gets), corral-relay serving
// the built web app (web.root) with Web Push on, a team with its admin and host tokens, a git repository and corrald
// running the scripted fake Claude (tests/fakes/fake_claude.py). Node port of tests/integration/identities/stack.py.
// Everything is stopped by close(), and at exit whatever happens.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SRC = resolve(process.env.CORRAL_SOURCE_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
export const BUILD = resolve(process.env.CORRAL_BINARY_DIR ?? join(SRC, 'build'));
const BIN = join(BUILD, 'bin');

const children = new Set();
process.on('exit', () => {
  for (const p of children) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve_, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve_(port));
    });
  });
}

/** Polls fn until it returns a truthy value (returned) or timeoutMs passes (throws naming what). */
export async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
}

/** One HTTP(S) request: {status, headers, body (Buffer), json()}. opts: {method, headers, body, token, ca, socketPath}. */
export function http(url, opts = {}) {
  const u = new URL(url);
  const headers = { ...(opts.headers ?? {}) };
  let body = opts.body;
  if (body !== undefined && !(body instanceof Uint8Array) && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const fn = u.protocol === 'https:' ? httpsRequest : request;
  return new Promise((resolve_, reject) => {
    const req = fn(
      {
        hostname: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', headers,
        ca: opts.ca, socketPath: opts.socketPath, timeout: opts.timeout ?? 15000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          resolve_({ status: res.statusCode, headers: res.headers, body: b, json: () => JSON.parse(b.toString()) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function startProc(cmd, args, { env, log, cwd }) {
  const fd = openSync(log, 'a');
  const p = spawn(cmd, args, { env, cwd, stdio: ['ignore', fd, fd] });
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

async function stopProc(p, graceMs = 10000) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

export function tail(path, n = 4000) {
  try {
    const b = readFileSync(path);
    return b.subarray(Math.max(0, b.length - n)).toString();
  } catch {
    return '(none)';
  }
}

export class Stack {
  /** Starts everything; webRoot is the built clients/web (cmake target corral-web). */
  static async start({ webRoot, domain = 'agents.test', prefix = 'cr-web-' } = {}) {
    const s = new Stack();
    await s._start(webRoot, domain, prefix);
    return s;
  }

  async _start(webRoot, domain, prefix) {
    for (const b of ['corral-relay', 'corrald', 'corral', 'corral-fake-push']) {
      if (!existsSync(join(BIN, b))) throw new Error(`${join(BIN, b)} is missing: cmake --build ${BUILD} --target ${b}`);
    }
    const t = (this.tmp = mkdtempSync(join(tmpdir(), prefix)));
    this.logs = { redis: join(t, 'redis.log'), push: join(t, 'fake_push.log'), relay: join(t, 'relay.log'), host: join(t, 'corrald.log') };

    // redis-server on a unix socket
    this.redisSock = join(t, 'redis.sock');
    this.redis = startProc('redis-server', ['--port', '0', '--unixsocket', this.redisSock, '--dir', t, '--save', '',
      '--appendonly', 'no'], { env: process.env, log: this.logs.redis });
    await waitFor(() => existsSync(this.redisSock), 10000, 'redis-server');

    // the Web Push service, with a certificate for 127.0.0.1 the relay trusts
    this.pushCert = join(t, 'push-cert.pem');
    const key = join(t, 'push-key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', this.pushCert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' });
    this.pushPort = await freePort();
    this.pushUrl = `https://127.0.0.1:${this.pushPort}`;
    this.push = startProc(join(BIN, 'corral-fake-push'), ['--listen', `127.0.0.1:${this.pushPort}`, '--cert', this.pushCert,
      '--key', key], { env: process.env, log: this.logs.push });
    this.pushCa = readFileSync(this.pushCert);
    await waitFor(async () => (await http(`${this.pushUrl}/_fake/health`, { ca: this.pushCa, timeout: 1000 })).status === 200,
      15000, 'corral-fake-push');

    // the relay
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.relayEnv = {
      ...process.env,
      CORRAL_HTTP_LISTEN: `127.0.0.1:${this.port}`,
      CORRAL_REDIS_URL: `unix://${this.redisSock}`,
      CORRAL_DATA_DIR: join(t, 'relay'),
      CORRAL_LOG_LEVEL: 'info',
      CORRAL_MAIL_DOMAIN: domain,
      CORRAL_MAIL_SMTP_LISTEN: `127.0.0.1:${await freePort()}`,
      CORRAL_WEB_ROOT: webRoot,
      CORRAL_WEBPUSH_SUBJECT: 'mailto:ops@corral.test',
      CORRAL_WEBPUSH_CA_FILE: this.pushCert,
    };
    await this.startRelay();
    const relay = join(BIN, 'corral-relay');
    this.admin = execFileSync(relay, ['admin', 'team', 'create', 'acme'], { env: this.relayEnv }).toString().trim();
    this.hostToken = execFileSync(relay, ['admin', 'token', 'create', '--team', 'acme', '--kind', 'host'], { env: this.relayEnv })
      .toString().trim();

    // a git repository and corrald with the fake Claude
    this.repo = join(t, 'repo');
    this.home = join(t, 'home');
    mkdirSync(this.repo);
    mkdirSync(this.home, { mode: 0o700 });
    execFileSync('git', ['init', '-q', '-b', 'main', this.repo]);
    writeFileSync(join(this.repo, 'README'), 'hello\n');
    this.git('add', 'README');
    this.git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'init');
    this.fakeLog = join(t, 'fake_claude.log');
    this.hostEnv = {
      ...process.env,
      HOME: t,
      CORRAL_HOME: this.home,
      CORRAL_RELAY_URL: this.url,
      CORRAL_RELAY_TOKEN: this.hostToken,
      CORRAL_AGENT_CLAUDE_CMD: `python3 ${join(SRC, 'tests', 'fakes', 'fake_claude.py')}`,
      FAKE_CLAUDE_STATE_DIR: join(t, 'fake_state'),
      FAKE_CLAUDE_LOG: this.fakeLog,
      GIT_CONFIG_NOSYSTEM: '1',
      PYTHONDONTWRITEBYTECODE: '1',
    };
    for (const k of ['CORRAL_URL', 'CORRAL_TOKEN', 'CORRAL_IDENTITY', 'CORRAL_SESSION']) delete this.hostEnv[k];
    this.sock = join(this.home, 'corrald.sock');
    this.corrald = startProc(join(BIN, 'corrald'), ['--repo', this.repo], { env: this.hostEnv, log: this.logs.host });
    await waitFor(() => existsSync(this.sock), 15000, 'corrald');
  }

  async startRelay() {
    this.relay = startProc(join(BIN, 'corral-relay'), [], { env: this.relayEnv, log: this.logs.relay });
    await waitFor(async () => (await http(`${this.url}/healthz`, { timeout: 1000 })).status === 200, 15000, 'the relay');
  }

  async stopRelay() {
    await stopProc(this.relay);
    this.relay = null;
  }

  git(...args) {
    return execFileSync('git', ['-C', this.repo, ...args], { env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1' } }).toString();
  }

  /** The corral CLI in the repository: {code, out, err}. */
  corral(...args) {
    const r = spawnSync(join(BIN, 'corral'), args, { env: this.hostEnv, cwd: this.repo, encoding: 'utf8', timeout: 120000 });
    return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
  }

  /** The corral CLI, which must succeed; its stdout. */
  corralOk(...args) {
    const r = this.corral(...args);
    if (r.code !== 0) throw new Error(`corral ${args.join(' ')} exited ${r.code}: ${r.out}${r.err}`);
    return r.out;
  }

  /** A request to corrald's local API on its unix socket, as a session (its token). */
  hostApi(path, { method = 'GET', body, token, timeout } = {}) {
    return http(`http://localhost${path}`, { method, body, token, socketPath: this.sock, timeout });
  }

  /** The CORRAL_* environment the fake Claude got for session sid (from its log), or null. */
  agentEnv(sid) {
    let lines = [];
    try {
      lines = readFileSync(this.fakeLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    } catch {
      return null;
    }
    const hit = lines.reverse().find((l) => l.env?.CORRAL_SESSION === sid);
    return hit?.env ?? null;
  }

  /** The fake push service: a subscription it makes playing the browser (restricted to the relay's VAPID key). */
  async pushSubscribe(applicationServerKey) {
    const r = await http(`${this.pushUrl}/_fake/webpush/subscribe`, { method: 'POST', ca: this.pushCa,
      body: { application_server_key: applicationServerKey } });
    if (r.status !== 201) throw new Error(`subscribe: ${r.status} ${r.body}`);
    return r.json();
  }

  /** The Web Push requests the fake received, with their decrypted payloads. */
  async pushLog() {
    const r = await http(`${this.pushUrl}/_fake/log?provider=webpush`, { ca: this.pushCa });
    return r.json().entries;
  }

  logTails() {
    return Object.entries(this.logs).map(([k, p]) => `---- ${k} (${p}) ----\n${tail(p)}`).join('\n');
  }

  async close({ keep = false } = {}) {
    await stopProc(this.corrald);
    await stopProc(this.relay);
    await stopProc(this.push, 5000);
    await stopProc(this.redis, 5000);
    if (!keep) rmSync(this.tmp, { recursive: true, force: true });
    return this.tmp;
  }
}
