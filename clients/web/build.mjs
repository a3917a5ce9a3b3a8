// build.mjs — builds the phone app into OUTDIR (default ../../build/web), which the relay serves as web.root:
//   index.html, manifest.webmanifest, icon.svg, icon-192.png, icon-512.png, icon-maskable-512.png,
//   sw.js (the service worker: at the root, so that its scope is the whole app),
//   assets/app-<hash>.js, assets/app-<hash>.css, assets/pcm-worklet-<hash>.js (content-hashed: cached for a year),
// each text file with a .gz twin (the relay sends it to browsers that take gzip). Prints every file's size and the
// compressed JavaScript of a first load (app + service worker), and fails when that is over the 150 KB budget.
// Usage: node build.mjs [OUTDIR]
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync, gzipSync } from 'node:zlib';

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.error('corral-web: esbuild is missing: run `npm ci` in clients/web (deploy/install-deps.sh does)');
  process.exit(1);
}

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, 'src');
const OUT = resolve(process.argv[2] ?? join(HERE, '..', '..', 'build', 'web'));
const BUDGET_GZ = 150 * 1024; // compressed JavaScript of a first load
const TARGET = ['chrome100', 'safari15', 'firefox102', 'edge100'];

const hash = (buf) => createHash('sha256').update(buf).digest('hex').slice(0, 10);
const written = [];

function emit(rel, data) {
  const path = join(OUT, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  const gz = /\.(js|css|html|webmanifest|svg|json)$/.test(rel) ? gzipSync(data, { level: 9 }) : null;
  if (gz) writeFileSync(`${path}.gz`, gz);
  else rmSync(`${path}.gz`, { force: true });
  written.push({ rel, size: data.length, gz: gz ? gz.length : null });
}

async function bundle(entry, opts) {
  const r = await esbuild.build({
    entryPoints: [join(SRC, entry)],
    bundle: true,
    minify: true,
    write: false,
    target: TARGET,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'warning',
    outdir: join(OUT, 'assets'),
    ...opts,
  });
  return r.outputFiles;
}

// ---- icons: drawn here, so no binary files in the tree ------------------------------------------------------------

const ICON_BG = [47, 111, 223];
const SVG_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">
<rect width="512" height="512" rx="112" fill="#2f6fdf"/>
<path d="M376 166A150 150 0 1 0 376 346" fill="none" stroke="#fff" stroke-width="56" stroke-linecap="round"/>
<circle cx="256" cy="256" r="44" fill="#fff"/>
</svg>
`;

/** Coverage 0..1 of the icon's white shape (a ring with a gate on the right and a dot) at (x, y) of a 512 box. */
function shape(x, y) {
  const dx = x - 256;
  const dy = y - 256;
  const d = Math.hypot(dx, dy);
  if (d <= 44) return 1;
  const gate = (37 * Math.PI) / 180;
  if (Math.abs(d - 150) <= 28 && Math.abs(Math.atan2(dy, dx)) >= gate) return 1;
  for (const cy of [166, 346]) if (Math.hypot(x - 376, y - cy) <= 28) return 1;
  return 0;
}

function crc32(buf) {
  let c;
  let crc = 0xffffffff;
  for (let n = 0; n < buf.length; n++) {
    c = (crc ^ buf[n]) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A PNG of the icon, size px square; maskable: full-bleed background, the shape within the 80 % safe zone. */
function pngIcon(size, maskable) {
  const SS = 4;
  const raw = Buffer.alloc(size * (size * 4 + 1));
  const scale = 512 / size;
  const radius = maskable ? 0 : 112;
  const inRect = (x, y) => {
    const cx = Math.min(Math.max(x, radius), 512 - radius);
    const cy = Math.min(Math.max(y, radius), 512 - radius);
    return Math.hypot(x - cx, y - cy) <= radius;
  };
  for (let py = 0; py < size; py++) {
    raw[py * (size * 4 + 1)] = 0; // filter: none
    for (let px = 0; px < size; px++) {
      let bg = 0;
      let fg = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const x = (px + (sx + 0.5) / SS) * scale;
          const y = (py + (sy + 0.5) / SS) * scale;
          if (!inRect(x, y)) continue;
          bg++;
          const k = maskable ? 0.8 : 1;
          fg += shape(256 + (x - 256) / k, 256 + (y - 256) / k);
        }
      }
      const o = py * (size * 4 + 1) + 1 + px * 4;
      const a = bg / (SS * SS);
      const f = bg ? fg / bg : 0;
      raw[o] = Math.round(ICON_BG[0] + (255 - ICON_BG[0]) * f);
      raw[o + 1] = Math.round(ICON_BG[1] + (255 - ICON_BG[1]) * f);
      raw[o + 2] = Math.round(ICON_BG[2] + (255 - ICON_BG[2]) * f);
      raw[o + 3] = Math.round(255 * a);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---- the build ----------------------------------------------------------------------------------------------------

async function main() {
  mkdirSync(join(OUT, 'assets'), { recursive: true });

  // the audio worklet: its own file (the CSP allows scripts from this origin only, no blob: modules)
  const [worklet] = await bundle('pcm-worklet.js', { format: 'esm', bundle: false });
  const workletName = `assets/pcm-worklet-${hash(worklet.contents)}.js`;
  emit(workletName, worklet.contents);

  // the app: one ES module and its stylesheet
  const app = await bundle('main.js', {
    format: 'esm',
    entryNames: 'app-[hash]',
    define: { __WORKLET_URL__: JSON.stringify(`/${workletName}`) },
  });
  const appJs = app.find((f) => f.path.endsWith('.js'));
  const appCss = app.find((f) => f.path.endsWith('.css'));
  const jsName = `assets/${relative(join(OUT, 'assets'), appJs.path)}`;
  const cssName = `assets/${relative(join(OUT, 'assets'), appCss.path)}`;
  emit(jsName, appJs.contents);
  emit(cssName, appCss.contents);

  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="color-scheme" content="light dark">
<meta name="theme-color" content="#f4f5f7" media="(prefers-color-scheme: light)">
<meta name="theme-color" content="#0e1116" media="(prefers-color-scheme: dark)">
<meta name="description" content="Supervise your coding agents: approve, reject, review and answer from your phone.">
<title>Corral</title>
<link rel="manifest" href="/manifest.webmanifest">
<link rel="icon" href="/icon.svg" type="image/svg+xml">
<link rel="apple-touch-icon" href="/icon-192.png">
<link rel="stylesheet" href="/${cssName}">
<script type="module" src="/${jsName}"></script>
</head>
<body>
<div id="app"><p class="boot">Corral</p></div>
<noscript><p>Corral needs JavaScript.</p></noscript>
</body>
</html>
`;
  emit('index.html', Buffer.from(html));

  const manifest = {
    name: 'Corral',
    short_name: 'Corral',
    description: 'Supervise your coding agents from your phone.',
    start_url: '/',
    scope: '/',
    display: 'standalone',
    orientation: 'portrait',
    background_color: '#0e1116',
    theme_color: '#2f6fdf',
    icons: [
      { src: '/icon.svg', sizes: 'any', type: 'image/svg+xml' },
      { src: '/icon-192.png', sizes: '192x192', type: 'image/png' },
      { src: '/icon-512.png', sizes: '512x512', type: 'image/png' },
      { src: '/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
    ],
  };
  emit('manifest.webmanifest', Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  emit('icon.svg', Buffer.from(SVG_ICON));
  emit('icon-192.png', pngIcon(192, false));
  emit('icon-512.png', pngIcon(512, false));
  emit('icon-maskable-512.png', pngIcon(512, true));

  // the service worker: caches exactly this build's shell; its version changes with any of it
  const shell = ['/', '/index.html', `/${jsName}`, `/${cssName}`, `/${workletName}`, '/manifest.webmanifest', '/icon.svg',
    '/icon-192.png'];
  const version = hash(Buffer.from(shell.join('\n') + html));
  const [sw] = await bundle('sw.js', {
    format: 'iife',
    outdir: undefined,
    outfile: join(OUT, 'sw.js'),
    define: { __SHELL__: JSON.stringify(shell), __VERSION__: JSON.stringify(version) },
  });
  emit('sw.js', sw.contents);

  // drop what an earlier build left in assets/
  const keep = new Set(written.map((w) => w.rel));
  for (const f of readdirSync(join(OUT, 'assets'))) {
    const rel = `assets/${f}`;
    if (!keep.has(rel) && !keep.has(rel.replace(/\.gz$/, ''))) rmSync(join(OUT, rel), { force: true });
  }

  // sizes
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  for (const w of written) console.log(`  ${w.rel.padEnd(40)} ${kb(w.size).padStart(9)}${w.gz ? `  gzip ${kb(w.gz).padStart(8)}` : ''}`);
  const first = written.filter((w) => w.rel === jsName || w.rel === 'sw.js');
  const total = first.reduce((n, w) => n + w.gz, 0);
  console.log(`corral-web: first-load JavaScript ${kb(total)} gzip (app ${kb(first[0].gz)} + service worker ${kb(first[1].gz)}; ` +
    `budget ${kb(BUDGET_GZ)}) -> ${OUT}`);
  if (total > BUDGET_GZ) {
    console.error(`corral-web: over the budget by ${kb(total - BUDGET_GZ)}`);
    process.exit(1);
  }
  // keep the tree's mtime for build systems that look at the directory
  statSync(OUT);
}

main().catch((e) => {
  console.error(`corral-web: ${e.message ?? e}`);
  process.exit(1);
});
