// The web page in headless Chromium (Debian's chromium, driven by playwright-core; no
// browser is ever downloaded). Starts `yujing demo` on a free port of 127.0.0.1, signs in
// with the token it prints, and checks that the map draws and colours the 38 区县 as the
// API grades them, that a district lists its institutions, that an institution page shows
// its history and breakdown, and that an alert can be acknowledged from the alert desk.
// Saves a screenshot.
//
//   npm ci --prefix crates/yujing-serve/tests/browser
//   cargo build -p yujing
//   node --test crates/yujing-serve/tests/browser/*.test.mjs
//
// Environment: YUJING_BIN (default target/debug/yujing, or $CARGO_TARGET_DIR/debug/yujing),
// YUJING_SCREENSHOT (default target/browser/screenshot.png), CHROMIUM (default
// /usr/bin/chromium), YUJING_DEMO_TOKEN (only if the demo's output cannot be parsed),
// YUJING_BROWSER_PIDFILE (where to write the demo's pid, so CI can kill it should this
// process itself be killed).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../../..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const BIN = process.env.YUJING_BIN || path.join(targetDir, 'debug', 'yujing');
const SHOT = process.env.YUJING_SCREENSHOT || path.join(root, 'target', 'browser', 'screenshot.png');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const READY_WAIT_MS = 10 * 60 * 1000; // the demo replays two years of reports first

/** The 38 districts (code, region), from the fixtures (not from the page or the API). */
const DISTRICTS = fs
  .readFileSync(path.join(root, 'fixtures', 'districts.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split(','))
  .map((f) => ({ code: f[0], region: f[3] }));
const CODES = DISTRICTS.map((d) => d.code);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The demo process, its output so far and its base URL. */
const demo = { child: null, output: '', base: '', token: '' };

function stopDemo() {
  const c = demo.child;
  if (c && c.exitCode === null && c.signalCode === null) {
    c.kill('SIGTERM');
    setTimeout(() => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL'), 10_000).unref();
  }
}
process.on('exit', () => demo.child && demo.child.exitCode === null && demo.child.kill('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopDemo();
    process.exit(130);
  });
}

/**
 * The regulator's token from the demo's banner: the line `TOKEN  regulator  (name)` of its
 * token list, else a `#token=…` link or `Bearer TOKEN` example.
 */
function tokenFrom(text) {
  if (process.env.YUJING_DEMO_TOKEN) return process.env.YUJING_DEMO_TOKEN;
  const m =
    text.match(/^\s+([A-Za-z0-9._~-]{8,})\s+regulator\b/m) ||
    text.match(/#token=([A-Za-z0-9._~-]{8,})/) ||
    text.match(/Bearer\s+([A-Za-z0-9._~-]{8,})/);
  return m ? m[1] : '';
}

/** Whether the demo has replayed all its reports (it serves while it replays). */
const replayed = (text) => /replayed \d+ inputs/.test(text);

async function startDemo() {
  assert.ok(fs.existsSync(BIN), `${BIN} does not exist: build it with cargo build -p yujing (or set YUJING_BIN)`);
  const port = await freePort();
  const metricsPort = await freePort();
  demo.base = `http://127.0.0.1:${port}`;
  const args = ['demo', '--listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`];
  demo.child = spawn(BIN, args, {
    cwd: root,
    env: { ...process.env, YUJING_LOG: process.env.YUJING_LOG || 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pidfile = process.env.YUJING_BROWSER_PIDFILE;
  if (pidfile) {
    fs.writeFileSync(pidfile, `${demo.child.pid}\n`);
    demo.child.on('exit', () => fs.rmSync(pidfile, { force: true }));
  }
  for (const s of [demo.child.stdout, demo.child.stderr]) s.on('data', (d) => (demo.output += d.toString()));
  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    if (demo.child.exitCode !== null) {
      assert.fail(`yujing demo exited with ${demo.child.exitCode} before it was ready:\n${demo.output.slice(-4000)}`);
    }
    try {
      const r = await fetch(`${demo.base}/readyz`);
      if (r.ok && replayed(demo.output)) {
        demo.token = tokenFrom(demo.output);
        assert.ok(demo.token, `no token in the demo's output:\n${demo.output.slice(-4000)}`);
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) assert.fail(`yujing demo did not finish its replay in time:\n${demo.output.slice(-4000)}`);
    await sleep(250);
  }
}

/** The API, as the test sees it (to compare the page with). */
async function api(p) {
  const r = await fetch(`${demo.base}/api/v1${p}`, { headers: { Authorization: `Bearer ${demo.token}` } });
  const text = await r.text();
  assert.equal(r.status, 200, `GET ${p}: ${r.status} ${text}`);
  return JSON.parse(text);
}

describe('the web page in headless Chromium', () => {
  let context;
  let page;
  let profile;
  const pageErrors = [];
  let clicked = '';

  before(async () => {
    await startDemo();
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'yujing-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 1000 },
      locale: 'zh-CN',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    stopDemo();
  });

  test('the page loads and a wrong token is refused', async () => {
    const r = await page.goto(`${demo.base}/`);
    assert.equal(r.status(), 200);
    assert.match(await page.title(), /yujing/);
    await page.fill('#token-input', 'not-a-token');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.trim() !== '');
    assert.equal(await page.isVisible('#app'), false);
    await page.fill('#token-input', demo.token);
    await page.click('#login-submit');
    await page.waitForSelector('#app:not([hidden])');
  });

  test('38 districts are drawn and coloured by their grade', async () => {
    await page.waitForFunction(
      (n) => document.querySelectorAll('path.district:not([data-grade="none"])').length >= n,
      CODES.length,
    );
    const drawn = await page.$$eval('path.district', (ps) =>
      ps.map((p) => ({
        code: p.dataset.code,
        grade: p.dataset.grade,
        fill: p.getAttribute('fill'),
        d: p.getAttribute('d').length,
        box: p.getBBox().width * p.getBBox().height,
      })),
    );
    assert.deepEqual(drawn.map((d) => d.code).sort(), [...CODES].sort());
    const rm = await api('/riskmap?level=district');
    const byCode = new Map(rm.entities.map((e) => [e.id, e.grade]));
    assert.equal(byCode.size, CODES.length, 'the demo scores every district');
    const colours = await page.evaluate(() => {
      const s = getComputedStyle(document.documentElement);
      return Object.fromEntries(
        ['normal', 'blue', 'yellow', 'orange', 'red'].map((g) => [g, s.getPropertyValue(`--g-${g}`).trim()]),
      );
    });
    for (const d of drawn) {
      assert.ok(d.d > 20 && d.box > 1, `${d.code} has a shape`);
      assert.equal(d.grade, byCode.get(d.code), `${d.code} is coloured by its grade`);
      assert.equal(d.fill, colours[d.grade], `${d.code} is filled with the colour of ${d.grade}`);
    }
    // The demo's sample has planted trouble: the map is not all one colour.
    assert.ok(new Set(drawn.map((d) => d.grade)).size > 1, 'more than one grade on the map');
    assert.equal(await page.inputValue('#sel-period'), rm.period);
  });

  test('the region and sector selectors dim and recolour the map', async () => {
    await page.selectOption('#sel-region', 'southeast');
    const southeast = DISTRICTS.filter((d) => d.region === 'southeast').map((d) => d.code).sort();
    await page.waitForFunction((n) => document.querySelectorAll('path.district:not(.dim)').length === n, southeast.length);
    const lit = await page.$$eval('path.district:not(.dim)', (ps) => ps.map((p) => p.dataset.code).sort());
    assert.deepEqual(lit, southeast);
    await page.selectOption('#sel-sector', 'microloan');
    await page.waitForFunction(() => document.querySelector('#map').dataset.sector === 'microloan');
    const rm = await api('/riskmap?level=district&sector=microloan');
    const grades = await page.$$eval('path.district', (ps) => ps.map((p) => [p.dataset.code, p.dataset.grade]));
    const want = new Map(rm.entities.map((e) => [e.id, e.grade]));
    for (const [code, grade] of grades) assert.equal(grade, want.get(code) || 'none', `${code} in microloan`);
    await page.selectOption('#sel-sector', 'all');
    await page.selectOption('#sel-region', '');
    await page.waitForFunction(() => document.querySelector('#map').dataset.sector === 'all');
    assert.equal(await page.$$eval('path.district.dim', (ps) => ps.length), 0);
    // An earlier period recolours the map as the API grades that period.
    const periods = await page.$$eval('#sel-period option', (os) => os.map((o) => o.value));
    const older = periods[periods.length - 1];
    assert.notEqual(older, periods[0]);
    await page.selectOption('#sel-period', older);
    await page.waitForFunction((p) => document.querySelector('#map').dataset.period === p, older);
    const then = await api(`/riskmap?level=district&period=${older}`);
    const thenGrades = new Map(then.entities.map((e) => [e.id, e.grade]));
    for (const [code, grade] of await page.$$eval('path.district', (ps) => ps.map((p) => [p.dataset.code, p.dataset.grade]))) {
      assert.equal(grade, thenGrades.get(code) || 'none', `${code} in ${older}`);
    }
    await page.selectOption('#sel-period', periods[0]);
    await page.waitForFunction((p) => document.querySelector('#map').dataset.period === p, periods[0]);
  });

  test('clicking a district lists its institutions', async () => {
    const rm = await api('/riskmap?level=district');
    // A point inside each district that is not covered by another: the click lands there.
    const targets = await page.$$eval('path.district', (ps) =>
      ps
        .map((p) => {
          const r = p.getBoundingClientRect();
          const x = r.left + r.width / 2;
          const y = r.top + r.height / 2;
          const hit = document.elementFromPoint(x, y);
          return { code: p.dataset.code, x, y, ok: hit === p || p.contains(hit) };
        })
        .filter((t) => t.ok),
    );
    // The riskiest district that can be clicked (it makes the telling screenshot).
    const score = new Map(rm.entities.map((e) => [e.id, e.institutions > 0 ? e.score : -1]));
    targets.sort((a, b) => score.get(b.code) - score.get(a.code));
    assert.ok(targets.length > 0, 'some district can be clicked');
    const t = targets[0];
    await page.mouse.click(t.x, t.y);
    clicked = t.code;
    await page.waitForSelector(`#district-name[data-code="${t.code}"]`);
    await page.waitForSelector('#district-institutions tbody tr[data-institution-id]');
    const shown = await page.$$eval('#district-institutions tbody tr[data-institution-id]', (rs) =>
      rs.map((r) => r.dataset.institutionId),
    );
    const d = await api(`/districts/${t.code}`);
    assert.ok(d.institutions.length > 0, `${t.code} has institutions`);
    assert.deepEqual(shown, d.institutions.map((i) => i.id));
    assert.equal(await page.getAttribute(`path[data-code="${t.code}"]`, 'class'), 'district selected');
    assert.equal(new URL(page.url()).hash, `#/map/${t.code}`);
  });

  test('an institution page shows its score history and breakdown', async () => {
    const first = await page.getAttribute('#district-institutions tbody tr[data-institution-id]', 'data-institution-id');
    await page.click(`#district-institutions tbody tr[data-institution-id="${first}"] a`);
    await page.waitForSelector('#breakdown');
    const inst = await api(`/institutions/${encodeURIComponent(first)}`);
    assert.equal((await page.textContent('#institution-name')).trim(), inst.name);
    const dots = await page.$$eval('#institution-chart .dot', (ds) => ds.map((d) => d.dataset.period));
    assert.deepEqual(dots, inst.history.map((h) => h.period));
    const rows = await page.$$eval('#breakdown tr[data-indicator]', (rs) => rs.map((r) => r.dataset.indicator));
    assert.deepEqual(rows, inst.score.indicators.map((i) => i.indicator));
  });

  test('an alert can be acknowledged from the alert desk', async () => {
    await page.click('#tabs a[data-tab="alerts"]');
    // Open and acknowledged alerts, a page at a time.
    await page.waitForSelector('#alert-table tbody tr[data-alert-id]');
    const active = await api('/alerts?state=active&limit=1');
    assert.equal(Number(await page.textContent('#alert-total')), active.total);
    const rows = () => page.$$eval('#alert-table tbody tr[data-alert-id]', (rs) => rs.length);
    assert.equal(await rows(), Math.min(active.total, 50));
    assert.equal(await page.isVisible('#alert-more'), active.total > 50);
    if (active.total > 50) {
      await page.click('#alert-more');
      await page.waitForFunction((n) => document.querySelectorAll('#alert-table tbody tr[data-alert-id]').length === n, Math.min(active.total, 100));
    }
    await page.selectOption('#filter-state', 'open');
    await page.waitForFunction(() => {
      const rs = [...document.querySelectorAll('#alert-table tbody tr[data-alert-id]')];
      return rs.length > 0 && rs.every((r) => r.dataset.state === 'open');
    });
    await page.waitForSelector('#alert-table tbody tr[data-state="open"] button[data-action="ack"]');
    const id = await page.getAttribute('#alert-table tbody tr[data-state="open"]', 'data-alert-id');
    const beforeAck = await api(`/alerts/${id}`);
    assert.equal(beforeAck.state, 'open');
    await page.click(`#alert-table tbody tr[data-alert-id="${id}"] button[data-action="ack"]`);
    await page.waitForSelector(`#alert-table tbody tr[data-alert-id="${id}"][data-state="acknowledged"]`);
    const afterAck = await api(`/alerts/${id}`);
    assert.equal(afterAck.state, 'acknowledged');
    const audit = await api(`/audit?alert_id=${id}`);
    assert.ok(audit.items.some((e) => e.alert_id === id), 'the acknowledgement is audited');
    await page.waitForFunction((aid) => document.querySelector('#audit-table tbody').textContent.includes(aid), id);
  });

  test('an alert can be assigned', async () => {
    const row = '#alert-table tbody tr[data-state="acknowledged"]';
    const id = await page.getAttribute(row, 'data-alert-id');
    await page.click(`${row}[data-alert-id="${id}"] button[data-action="assign"]`);
    await page.fill('#alert-table tr.form-row input[name="value"]', '张伟 Zhang Wei');
    await page.click('#alert-table tr.form-row button[type="submit"]');
    await page.waitForFunction(
      (aid) => document.querySelector(`#alert-table tr[data-alert-id="${aid}"] td.assignee`)?.textContent.includes('Zhang Wei'),
      id,
    );
    assert.equal((await api(`/alerts/${id}`)).assignee, '张伟 Zhang Wei');
  });

  test('resolving needs a note', async () => {
    const row = '#alert-table tbody tr[data-state="acknowledged"]';
    const id = await page.getAttribute(row, 'data-alert-id');
    await page.click(`${row}[data-alert-id="${id}"] button[data-action="resolve"]`);
    await page.click('#alert-table tr.form-row button[type="submit"]');
    // The browser's own required-field check or ours: nothing is sent without a note.
    assert.equal((await api(`/alerts/${id}`)).state, 'acknowledged');
    await page.fill('#alert-table tr.form-row input[name="value"]', '已约谈机构负责人 Met the board; plan filed');
    await page.click('#alert-table tr.form-row button[type="submit"]');
    await page.waitForSelector(`#alert-table tbody tr[data-alert-id="${id}"][data-state="resolved"]`);
    const resolved = await api(`/alerts/${id}`);
    assert.equal(resolved.state, 'resolved');
    assert.match(resolved.note || '', /Met the board/);
  });

  test('saves a screenshot of the coloured map', async () => {
    await page.goto(`${demo.base}/#/map/${clicked}`);
    await page.waitForSelector(`#district-name[data-code="${clicked}"]`);
    await page.waitForSelector('#district-institutions tbody tr[data-institution-id]');
    await page.evaluate(() => window.scrollTo(0, 0));
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT });
    const png = fs.readFileSync(SHOT);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.deepEqual(pageErrors, [], 'no script errors on the page');
  });
});
