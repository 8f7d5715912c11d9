// playground.test.mjs - the playground page (GET /, web/playground.html) in a real browser:
// Debian's headless Chromium driven by playwright-core, against build/rnnserve on a loopback
// port. Every number the page shows is checked against the same request sent to the API here.
//
// Run with `make test-browser` (installs Chromium and playwright-core when missing). Screenshots
// go to build/browser/ (BROWSER_OUT overrides); `make playground-screenshot` copies the first one
// to docs/playground.png for the README.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.RNNSERVE_BIN || path.join(ROOT, 'build', 'rnnserve');
const OUT = process.env.BROWSER_OUT || path.join(ROOT, 'build', 'browser');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WIDE = { width: 1280, height: 900 };

// Two models, so that picking one means something: the bundled sine RNN (the default) and a
// 2-layer bidirectional LSTM from the PyTorch fixtures (markers for two layers and both
// directions, and a cell state).
const MODELS = [
  { name: 'sine', type: 'rnn', input_size: 1, hidden_size: 4,
    weights: path.join(ROOT, 'config', 'sine.safetensors') },
  { name: 'lstm_2layer_bidir', type: 'lstm', input_size: 3, hidden_size: 4, num_layers: 2,
    bidirectional: true,
    weights: path.join(ROOT, 'tests', 'fixtures', 'cases', 'lstm_2layer_bidir', 'model.safetensors') },
];

let tmp, server, base, context, page;
const requests = []; // every URL the browser asked for
const consoleErrors = [];

function startServer(configPath) {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(path.join(OUT, 'server.log'));
    const p = spawn(BIN, ['--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let text = '';
    const timer = setTimeout(() => reject(new Error('rnnserve did not start in 10 s:\n' + text)),
                             10000);
    p.stderr.on('data', (d) => {
      log.write(d);
      text += d;
      const m = text.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !base) {
        clearTimeout(timer);
        base = `http://127.0.0.1:${m[1]}`;
        resolve(p);
      }
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (!base) reject(new Error(`rnnserve exited ${code} before listening:\n${text}`));
    });
  });
}

async function api(route, body) {
  const r = await fetch(base + route, body === undefined ? {} : { method: 'POST', body });
  return { status: r.status, json: await r.json() };
}

// Runs TRIGGER (which starts a forward pass in the page) and waits until that pass is answered.
async function runAndWait(trigger) {
  const n = Number(await page.getAttribute('#result', 'data-run'));
  await trigger();
  await page.waitForFunction((k) => {
    const r = document.getElementById('result');
    return Number(r.dataset.run) > k && r.dataset.state !== 'running';
  }, n);
  return page.getAttribute('#result', 'data-state');
}

// What the charts of every sequence card hold, read from the SVG the page drew.
function readCharts() {
  return page.$$eval('article.seq', (cards) => cards.map((card) => {
    const pts = (el) => el.getAttribute('points').trim().split(/\s+/).map((p) => p.split(',').map(Number));
    const center = (el) => {
      const b = el.getBBox();
      return [b.x + b.width / 2, b.y + b.height / 2];
    };
    return {
      seq: Number(card.dataset.seq),
      steps: Number(card.dataset.steps),
      series: [...card.querySelectorAll('polyline.series')].map((el) => ({
        col: Number(el.dataset.col), unit: Number(el.dataset.unit), dir: Number(el.dataset.dir),
        points: pts(el),
      })),
      markers: [...card.querySelectorAll('.final-marker')].map((el) => ({
        layer: Number(el.dataset.layer), dir: Number(el.dataset.dir), unit: Number(el.dataset.unit),
        step: Number(el.dataset.step), ring: el.tagName === 'circle', center: center(el),
      })),
    };
  }));
}

// The least-squares line y = a + b * v through PAIRS of [v, y].
function affine(pairs) {
  const n = pairs.length;
  const mv = pairs.reduce((s, p) => s + p[0], 0) / n, my = pairs.reduce((s, p) => s + p[1], 0) / n;
  let sxy = 0, sxx = 0;
  for (const [v, y] of pairs) { sxy += (v - mv) * (y - my); sxx += (v - mv) ** 2; }
  const b = sxy / sxx;
  return { a: my - b * mv, b };
}

// The numbers of one table (outputs, hidden or cell) of sequence I, as displayed.
function tableNumbers(i, cls) {
  return page.$$eval(`article.seq[data-seq="${i}"] table.${cls} tbody tr`,
                     (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  tmp = mkdtempSync(path.join(tmpdir(), 'rnnserve-browser-'));
  const cfg = path.join(tmp, 'config.json');
  writeFileSync(cfg, JSON.stringify({ server: { host: '127.0.0.1', port: 0 }, models: MODELS }));
  server = await startServer(cfg);
  // The flags keep Chromium from reaching for Google's services on a machine with no network.
  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: WIDE,
  });
  context.on('request', (r) => requests.push(r.url()));
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('uncaught: ' + e.message));
});

after(async () => {
  if (context) await context.close();
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)));
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('GET / serves the page; it lists the models and runs the example at once', async () => {
  const resp = await page.goto(base + '/');
  assert.equal(resp.status(), 200);
  assert.equal(resp.headers()['content-type'], 'text/html; charset=utf-8');
  await page.waitForSelector('#result[data-state="ok"]');
  const listed = (await api('/v1/models')).json.models.map((m) => m.name);
  const options = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  assert.deepEqual(options, listed);
  assert.equal(await page.inputValue('#model'), 'sine');
  assert.match(await page.textContent('#model-desc'),
               /^nn\.RNN\(input_size=1, hidden_size=4, num_layers=1, nonlinearity='tanh'/);
  // The example is a ragged batch of two: a person sees the padding without typing anything.
  const steps = await page.$$eval('article.seq', (cs) => cs.map((c) => Number(c.dataset.steps)));
  assert.deepEqual(steps, [12, 7]);
  await page.screenshot({ path: path.join(OUT, 'playground.png'), fullPage: true });
});

test('a ragged batch of two on the picked model: series, markers and numbers match the API',
     async () => {
  const model = MODELS[1];
  const H = model.hidden_size, L = model.num_layers, D = 2;
  assert.equal(await runAndWait(() => page.selectOption('#model', model.name)), 'ok');
  assert.match(await page.textContent('#model-desc'), /^nn\.LSTM\(input_size=3, hidden_size=4, num_layers=2, bias=True, batch_first=True, bidirectional=True\)/);

  const inputs = [
    [[0.5, -0.25, 1], [0.1, 0.2, 0.3], [-1, 0, 1], [0.75, 0.5, -0.5], [0, 0, 0.125]],
    [[1, 1, 1], [-0.5, 0.25, 0], [0.3, -0.7, 0.9]],
  ];
  await page.fill('#sequences', inputs.map((s) => s.map((st) => st.join(', ')).join('; ')).join('\n'));
  assert.equal(await runAndWait(() => page.click('#run')), 'ok');

  // The page sent exactly this batch, to the picked model's route.
  const sent = await page.textContent('#raw-request');
  assert.deepEqual(JSON.parse(sent), { inputs });
  const want = await api(`/v1/models/${model.name}/forward`, sent);
  assert.equal(want.status, 200);
  const ans = want.json;
  assert.deepEqual(JSON.parse(await page.textContent('#raw-response')), ans);

  const charts = await readCharts();
  assert.equal(charts.length, 2);
  for (const c of charts) {
    const T = inputs[c.seq].length;
    assert.equal(c.steps, T);
    // One series per output unit (forward and backward halves), each one point per step.
    assert.equal(c.series.length, D * H, `sequence ${c.seq}: series`);
    const xs = c.series[0].points.map((p) => p[0]);
    const fit = affine(c.series.flatMap((s) => s.points.map((p, t) =>
      [ans.outputs[c.seq][t][s.col], p[1]])));
    assert.ok(fit.b < 0, 'larger values are drawn higher');
    for (const s of c.series) {
      assert.equal(s.points.length, T, `sequence ${c.seq} column ${s.col}: points`);
      assert.deepEqual(s.points.map((p) => p[0]), xs, 'every series shares the time axis');
      // Drawn where the API's numbers say, on one linear scale (coordinates are printed to
      // 0.01, so a point may sit 0.005 off).
      ans.outputs[c.seq].forEach((row, t) =>
        assert.ok(Math.abs(fit.a + fit.b * row[s.col] - s.points[t][1]) < 0.02,
                  `sequence ${c.seq} column ${s.col} step ${t}: y ${s.points[t][1]}`));
    }
    for (let k = 1; k < xs.length; k++) assert.ok(xs[k] > xs[k - 1]);
    // The hidden state of every layer and direction, where that direction ended: the
    // sequence's own last step going forward, its first step going backward.
    assert.equal(c.markers.length, L * D * H, `sequence ${c.seq}: markers`);
    for (const m of c.markers) {
      const where = `sequence ${c.seq} layer ${m.layer} dir ${m.dir} unit ${m.unit}`;
      const step = m.dir === 0 ? T - 1 : 0;
      assert.equal(m.step, step, where);
      assert.ok(Math.abs(m.center[0] - xs[step]) < 0.02, `${where}: x ${m.center[0]} vs ${xs[step]}`);
      const v = ans.hidden[c.seq][m.layer * D + m.dir][m.unit];
      if (m.ring) {
        // The top layer's final state sits on its own output line at that step.
        assert.equal(m.layer, L - 1, where);
        const s = c.series.find((x) => x.unit === m.unit && x.dir === m.dir);
        assert.ok(Math.abs(m.center[1] - s.points[step][1]) < 0.02, `${where}: on the line`);
        assert.ok(Math.abs(m.center[1] - (fit.a + fit.b * v)) < 0.02, where);
      } else {
        assert.ok(m.layer < L - 1, where);
        assert.ok(Math.abs(m.center[1] - (fit.a + fit.b * v)) < 0.02, `${where}: y`);
      }
    }
  }
  // The shorter sequence's markers are at its step 2, not at the padded end (step 4).
  assert.ok(charts[1].markers.some((m) => m.dir === 0 && m.step === 2));

  // The displayed numbers are the API's, every one of them.
  for (let i = 0; i < 2; i++) {
    for (const [cls, want] of [['outputs', ans.outputs[i]], ['hidden', ans.hidden[i]],
                               ['cell', ans.cell[i]]]) {
      const shown = await tableNumbers(i, cls);
      assert.deepEqual(shown.map((r) => r.map(Number)), want, `${cls}[${i}]`);
    }
  }

  // Shapes as PyTorch prints them.
  const shape = (k) => page.textContent(`[data-shape="${k}"]`);
  assert.equal(await shape('output'), 'torch.Size([2, 5, 8])');
  assert.equal(await shape('h_n'), 'torch.Size([4, 2, 4])');
  assert.equal(await shape('c_n'), 'torch.Size([4, 2, 4])');

  // The curl command does the same call.
  const curl = await page.textContent('#curl');
  assert.ok(curl.startsWith('curl -s -d '), curl);
  const viaCurl = JSON.parse(execFileSync('sh', ['-c', curl], { encoding: 'utf8', timeout: 10000 }));
  assert.deepEqual(viaCurl, ans);
  await page.screenshot({ path: path.join(OUT, 'playground-lstm.png'), fullPage: true });
});

test("a bad input shows the server's error text verbatim", async () => {
  // Two numbers in a step of a model that takes three: the server names the step.
  await page.fill('#sequences', '0.1, 0.2; 0.3, 0.4, 0.5');
  assert.equal(await runAndWait(() => page.click('#run')), 'error');
  let sent = await page.textContent('#raw-request');
  let want = await api('/v1/models/lstm_2layer_bidir/forward', sent);
  assert.equal(want.status, 400);
  assert.match(want.json.error.message, /inputs\[0\]\[0\]/);
  assert.equal(await page.textContent('#error-message'), want.json.error.message);
  assert.match(await page.textContent('#error-title'), /400 Bad Request/);
  assert.ok(await page.isHidden('#answer'), 'no stale chart next to an error');
  assert.ok(await page.isVisible('#error'));
  await page.screenshot({ path: path.join(OUT, 'playground-error.png'), fullPage: true });

  // JSON pasted as is, broken: the server's parser has the word.
  await page.fill('#sequences', '[[[0.1, 0.2, 0.3]], [[1e39, 0, 0]]]');
  assert.equal(await runAndWait(() => page.keyboard.press('Control+Enter')), 'error');
  sent = await page.textContent('#raw-request');
  want = await api('/v1/models/lstm_2layer_bidir/forward', sent);
  assert.equal(want.status, 400);
  assert.equal(await page.textContent('#error-message'), want.json.error.message);
  assert.match(want.json.error.message, /float32/);
});

test('keyboard: every control has a label, generate and Ctrl+Enter run a batch', async () => {
  const unlabelled = await page.$$eval('input, select, textarea, button', (els) =>
    els.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') &&
                      !e.textContent.trim()).map((e) => e.outerHTML));
  assert.deepEqual(unlabelled, []);
  // The box holds the last test's text, so picking a model does not run anything yet.
  await page.selectOption('#model', 'sine');
  await page.click('#gen-clear');
  await page.selectOption('#gen-kind', 'step');
  await page.fill('#gen-length', '6');
  await page.click('#gen-add');
  await page.selectOption('#gen-kind', 'sine');
  await page.fill('#gen-length', '9');
  await page.click('#gen-add');
  await page.focus('#sequences');
  assert.equal(await runAndWait(() => page.keyboard.press('Control+Enter')), 'ok');
  const steps = await page.$$eval('article.seq', (cs) => cs.map((c) => Number(c.dataset.steps)));
  assert.deepEqual(steps, [6, 9]);
  // Tab reaches the run button from the model picker (nothing traps focus on the way).
  await page.focus('#model');
  let reached = false;
  for (let k = 0; k < 15 && !reached; k++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.id === 'run');
  }
  assert.ok(reached, 'Tab from the model picker never reached the run button');
});

test('text contrast is at least WCAG AA everywhere on the page', async () => {
  const low = await page.evaluate(() => {
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = (c) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
    };
    const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
    const background = (e) => {
      for (; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c;
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const e of document.querySelectorAll('body *')) {
      const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || !e.getClientRects().length) continue;
      const cs = getComputedStyle(e);
      if (e instanceof SVGElement) {
        // Chart text lies on white or on the grey padding band: judge it on the band.
        const r = ratio(rgb(cs.fill), [238, 241, 244]);
        if (r < 4.5) bad.push(`${e.textContent.trim()}: ${r.toFixed(2)}`);
        continue;
      }
      const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
      const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      const r = ratio(rgb(cs.color), background(e));
      if (r < need) bad.push(`${e.tagName} "${e.textContent.trim().slice(0, 40)}": ${r.toFixed(2)}`);
    }
    return bad;
  });
  assert.deepEqual(low, []);
});

test('a narrow screen (375 px) scrolls only up and down', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.waitForFunction(() => {
    const svg = document.querySelector('svg.chart');
    return svg && Number(svg.getAttribute('width')) <= 375;
  });
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    charts: [...document.querySelectorAll('svg.chart')].map((s) => s.getBoundingClientRect().right),
  }));
  assert.ok(widths.doc <= 375, `page is ${widths.doc} px wide`);
  for (const r of widths.charts) assert.ok(r <= 375, `a chart ends at ${r} px`);
  await page.screenshot({ path: path.join(OUT, 'playground-narrow.png'), fullPage: true });
  await page.setViewportSize(WIDE);
});

test('the page fetched nothing but this server, and logged no error of its own', async () => {
  assert.ok(requests.length > 0);
  const elsewhere = requests.filter((u) => !u.startsWith(base + '/') && !u.startsWith('data:'));
  assert.deepEqual(elsewhere, []);
  // The 400s above are the server answering as it should; Chromium reports those as errors.
  const own = consoleErrors.filter((t) => !/status of 400 \(Bad Request\)/.test(t));
  assert.deepEqual(own, []);
});
