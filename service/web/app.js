// fleetscore fleet view: the board, a tail's trends and the models panel, kept live by one
// EventSource. Plain DOM (createElement/textContent only: the CSP forbids inline code and
// styles, and text nodes make tail names and messages safe to show as they are).
(() => {
  'use strict';

  // ---------------------------------------------------------------- constants

  const SEVERITY_RANK = { critical: 3, warning: 2, info: 1, none: 0 };
  // A shape per severity, so that it never depends on colour alone (badges get theirs from
  // the CSS, the same shapes; the charts' SVG text uses these).
  const SEVERITY_SHAPE = { critical: '▲', warning: '◆', info: '●' };
  const MODEL_NAMES = {
    'engine-rul': 'Remaining life',
    'engine-anomaly': 'Anomaly',
    'delay-risk': 'Delay risk',
  };
  // Marker colours per model version in a chart (Okabe–Ito, in order of appearance).
  const VERSION_COLOURS = ['#0072B2', '#CC79A7', '#009E73', '#56B4E9', '#000000'];
  const SEVERITY_COLOURS = { critical: '#D55E00', warning: '#E69F00', info: '#0072B2' };
  const RETRY_MAX_S = 30;
  const PAGE_ROWS = 100;   // board rows per page ("Show more" adds a page)
  const ALERT_ITEMS = 50;  // open alerts listed beside the board
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------- state

  const state = {
    meta: null,            // the snapshot without its rows: seq, instance, columns, generated_at
    rows: new Map(),       // tail -> Row, as the server sent it
    skewMs: 0,             // client clock minus server clock, from the last snapshot
    sort: { key: 'risk', dir: 'desc' },
    filter: { text: '', severity: 'all' },
    limit: PAGE_ROWS,      // rows of the board shown (the riskiest by the current sort)
    route: { view: 'board' },
    lastMessageAt: null,   // client time of the last SSE message (for "stale since")
  };
  const boardDom = { rowEls: new Map(), alertEls: new Map(), columnsKey: '' };

  // ---------------------------------------------------------------- DOM helpers

  /** Creates an element: `props` are attributes ('text' sets textContent), children are
   *  nodes, strings or arrays of them (null and false are skipped). */
  function el(tag, props, ...children) {
    return build(document.createElement(tag), props, children);
  }

  function svgEl(tag, props, ...children) {
    return build(document.createElementNS(SVG_NS, tag), props, children);
  }

  function build(node, props, children) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const $ = (selector) => document.querySelector(selector);

  /** Puts `nodes` into `parent` in that order, moving only what is out of place, and keeps
   *  the focused element focused and the page where it was scrolled. */
  function placeInOrder(parent, nodes) {
    const focused = document.activeElement;
    const scrollY = window.scrollY;
    let cursor = parent.firstChild;
    for (const node of nodes) {
      if (node === cursor) cursor = cursor.nextSibling;
      else parent.insertBefore(node, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    // Moving a node blurs what it contains: give the focus back without scrolling to it.
    if (focused && focused !== document.activeElement && focused.isConnected) {
      focused.focus({ preventScroll: true });
    }
    if (window.scrollY !== scrollY) window.scrollTo(window.scrollX, scrollY);
  }

  function severityBadge(severity) {
    const sev = severity || 'none';
    return el('span', { class: `badge sev-${sev}`, text: sev });
  }

  /** Replaces a view's content, keeping the focus on the element with the same
   *  `data-focus-key` and the `<details>` (by `data-key`) that were open. */
  function replaceView(section, children) {
    const focused = document.activeElement && document.activeElement.closest('[data-focus-key]');
    const focusKey = focused && section.contains(focused) ? focused.dataset.focusKey : null;
    const open = new Set([...section.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key));
    section.replaceChildren(...children.flat());
    for (const details of section.querySelectorAll('details[data-key]')) details.open = open.has(details.dataset.key);
    const again = focusKey && section.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus({ preventScroll: true });
  }

  /** A scrolling box for a table without links: focusable, so that keyboards can scroll it. */
  function scrollBox(label, table) {
    return el('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': label }, table);
  }

  function tailLink(tail) {
    return el('a', { href: `#/tails/${encodeURIComponent(tail)}`, text: tail });
  }

  // ---------------------------------------------------------------- formatting

  const modelName = (model) => MODEL_NAMES[model] || model;
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function unitLabel(unit) {
    return unit === 'probability' ? '%' : unit || '';
  }

  /** A bare number in the unit's customary precision ("112", "23", "5.20"). */
  function fmtNumber(unit, v) {
    if (!isNum(v)) return '—';
    let text;
    if (unit === 'probability') text = String(Math.round(v * 100));
    else if (unit === 'cycles') text = String(Math.round(v));
    else if (unit === 'score') text = v.toFixed(2);
    else text = String(Number(v.toPrecision(3)));
    // A typographic minus (a model may predict past the end of life: "−2 cycles").
    return text.replace(/^-(?=[1-9.]|0\.0*[1-9])/, '\u2212').replace(/^-/, '');
  }

  /** A value with its unit: "112 cycles", "23 %", "5.20". */
  function fmtValue(unit, v) {
    if (!isNum(v)) return '—';
    if (unit === 'score' || !unit) return fmtNumber(unit, v);
    const number = fmtNumber(unit, v);
    const label = unit === 'cycles' && (number === '1' || number === '\u22121') ? 'cycle' : unitLabel(unit);
    return `${number} ${label}`;
  }

  /** The compact interval "98–125", or '' without both bounds. */
  function fmtInterval(unit, lower, upper) {
    if (!isNum(lower) || !isNum(upper)) return '';
    const [lo, hi] = [fmtNumber(unit, lower), fmtNumber(unit, upper)];
    // "98–125", but "−7 to −1": a dash between negative numbers reads as a minus.
    return lo.startsWith('\u2212') || hi.startsWith('\u2212') ? `${lo} to ${hi}` : `${lo}–${hi}`;
  }

  const pad2 = (n) => String(n).padStart(2, '0');
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  /** "2013-03-02 14:05 UTC" (with seconds on request), "—" for a missing time. */
  function fmtUtc(iso, seconds) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return '—';
    const date = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
    const time = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    return `${date} ${time}${seconds ? ':' + pad2(d.getUTCSeconds()) : ''} UTC`;
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} UTC`;
  }

  /** "4 s ago", "3 min ago", "2 h ago", "5 d ago" for a server wall-clock time. */
  function fmtAge(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return '—';
    const s = Math.max(0, Math.floor((Date.now() - state.skewMs - t) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  /** "1 critical, 2 warning" as spans (a narrow screen puts one per line) or 'none'. */
  function alertCounts(alerts) {
    const parts = ['critical', 'warning', 'info']
      .filter((s) => alerts && alerts[s] > 0)
      .map((s) => el('span', { class: 'count', text: `${alerts[s]} ${s}` }));
    return parts.length ? parts.flatMap((p, i) => (i ? [el('span', { class: 'sep', text: ', ' }), p] : [p])) : ['none'];
  }

  /** The severity a value reaches under a column's rules (the interval bound a rule looks
   *  at when its `on` says so), or null. */
  function breachOf(rules, value) {
    let worst = null;
    for (const rule of rules || []) {
      const v = rule.on === 'lower' ? value.lower : rule.on === 'upper' ? value.upper : value.value;
      if (!isNum(v)) continue;
      for (const level of rule.levels || []) {
        const crossed = rule.direction === 'below' ? v < level.threshold : v > level.threshold;
        if (crossed && SEVERITY_RANK[level.severity] > SEVERITY_RANK[worst || 'none']) worst = level.severity;
      }
    }
    return worst;
  }

  // ---------------------------------------------------------------- fetching

  async function getJson(url) {
    const res = await fetch(url, { headers: { accept: 'application/json' } });
    let body = null;
    try { body = await res.json(); } catch (_) { /* a non-JSON body: the status says enough */ }
    if (!res.ok) {
      // Both `{"error": "msg"}` (the service's ErrorBody) and `{"error": {"message"}}` occur.
      const err = body && body.error;
      const error = new Error((err && (err.message || err)) || `HTTP ${res.status}`);
      error.status = res.status;
      throw error;
    }
    return body;
  }

  // ---------------------------------------------------------------- live updates

  const live = { source: null, retryS: 1 };

  function setLive(mode) {
    document.body.dataset.live = mode;
    const status = $('#live-status');
    const since = state.lastMessageAt ? `stale since ${fmtClock(state.lastMessageAt)}` : 'not connected';
    const text = { connecting: 'connecting…', open: 'live', reconnecting: 'reconnecting…', closed: since }[mode];
    if (status.textContent !== text) status.textContent = text;
    status.title = state.lastMessageAt ? `Last update ${fmtClock(state.lastMessageAt)}` : '';
  }

  function connect() {
    const source = new EventSource('/events');
    live.source = source;
    const on = (type, handler) => source.addEventListener(type, (event) => {
      state.lastMessageAt = Date.now();
      handler(JSON.parse(event.data));
    });
    on('snapshot', (snapshot) => {
      live.retryS = 1;
      applySnapshot(snapshot);
      setLive('open');
      refreshOpenView(); // whatever happened while disconnected
    });
    on('board', applyBoardDelta);
    on('models', () => { if (state.route.view === 'models') loadModels(); });
    on('resync', () => getJson('/fleet').then((fleet) => { applySnapshot(fleet); refreshOpenView(); }).catch(reportError));
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        setLive('reconnecting'); // the browser retries network errors by itself
        return;
      }
      // Closed for good (a non-200 such as the 503 stream cap): retry ourselves, with backoff.
      source.close();
      setLive('closed');
      if (!state.meta) getJson('/fleet').then(applySnapshot).catch(reportError);
      setTimeout(() => { setLive('reconnecting'); connect(); }, live.retryS * 1000);
      live.retryS = Math.min(live.retryS * 2, RETRY_MAX_S);
    };
  }

  function reportError(error) {
    console.warn('fleetscore:', error.message); // shown, not thrown: the page keeps going
  }

  // ---------------------------------------------------------------- board: data

  function applySnapshot(snapshot) {
    const { tails, ...meta } = snapshot;
    state.meta = meta;
    const generated = Date.parse(meta.generated_at);
    if (!Number.isNaN(generated)) state.skewMs = Date.now() - generated;
    state.rows = new Map(tails.map((row) => [row.tail, row]));
    renderInstance();
    renderBoard();
  }

  function applyBoardDelta(delta) {
    if (!state.meta || delta.seq <= state.meta.seq) return; // already in what we hold
    state.meta.seq = delta.seq;
    for (const tail of delta.removed || []) state.rows.delete(tail);
    for (const row of delta.rows || []) state.rows.set(row.tail, row);
    renderBoard();
    const open = state.route;
    if (open.view === 'tail' && (delta.rows || []).some((r) => r.tail === open.tail)) loadTail();
  }

  /** The sort key of a row for the current sort; null sorts last in both directions. */
  function sortValue(row, key) {
    switch (key) {
      case 'risk': return row.risk;
      case 'tail': return row.tail;
      case 'severity': return SEVERITY_RANK[row.severity || 'none'] * 1e6 + (row.risk || 0);
      case 'alerts': {
        const a = row.alerts || {};
        return (a.critical || 0) * 1e6 + (a.warning || 0) * 1e3 + (a.info || 0);
      }
      case 'fresh': {
        const t = Date.parse(row.state && row.state.last_applied_at);
        return Number.isNaN(t) ? null : -t; // ascending = newest first
      }
      default: {
        const value = row.values && row.values[key];
        return value && isNum(value.value) ? value.value : null;
      }
    }
  }

  function compareRows(a, b) {
    const { key, dir } = state.sort;
    const va = sortValue(a, key);
    const vb = sortValue(b, key);
    if (va !== vb) {
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      const order = typeof va === 'string' ? va.localeCompare(vb, 'en', { numeric: true }) : va - vb;
      if (order) return dir === 'asc' ? order : -order;
    }
    // Ties by tail in code-point order, as the server orders its snapshot.
    return a.tail < b.tail ? -1 : a.tail > b.tail ? 1 : 0;
  }

  function matchesFilter(row) {
    const { text, severity } = state.filter;
    if (text && !row.tail.toLowerCase().includes(text)) return false;
    if (severity === 'open') return Boolean(row.severity);
    if (severity === 'critical') return row.severity === 'critical';
    return true;
  }

  /** The direction a column sorts in first: the bad end first (risk, severity and alerts
   *  descending; a model whose rules say "below" ascending), the tail A to Z, newest first. */
  function defaultDirection(key) {
    if (key === 'tail' || key === 'fresh') return 'asc';
    const column = (state.meta.columns || []).find((c) => c.model === key);
    const below = column && (column.rules || []).some((r) => r.direction === 'below');
    return below ? 'asc' : 'desc';
  }

  // ---------------------------------------------------------------- board: rendering

  function boardColumns() {
    // The unit line also says what the parentheses hold: "cycles (80 % interval)".
    const level = (c) => (c.interval && isNum(c.interval_level) ? ` (${Math.round(c.interval_level * 100)} % interval)` : '');
    const models = (state.meta.columns || []).map((c) => ({
      key: c.model, label: modelName(c.model), unit: `${unitLabel(c.unit)}${level(c)}`, title: c.meaning, column: c, num: true,
    }));
    return [
      { key: 'tail', label: 'Tail' },
      { key: 'severity', label: 'Severity' },
      { key: 'alerts', label: 'Open alerts' },
      ...models,
      { key: 'risk', label: 'Risk', title: 'The service\'s risk score: the board\'s default order', num: true },
      { key: 'fresh', label: 'Updated', num: true },
    ];
  }

  function renderHead() {
    const columns = boardColumns();
    const key = JSON.stringify(state.meta.columns);
    if (key !== boardDom.columnsKey) {
      // The models (or their rules, units) changed: every row's cells are rebuilt too.
      boardDom.columnsKey = key;
      boardDom.rowEls.clear();
      $('#board tbody').replaceChildren();
      const cells = columns.map((c) => el('th', { scope: 'col', 'data-sort': c.key, class: c.num ? 'num' : null },
        el('button', { type: 'button', class: 'sort', title: c.title },
          el('span', { class: 'th-label', text: c.label }),
          c.unit ? el('span', { class: 'th-unit', text: c.unit }) : null,
          el('span', { class: 'sort-icon', 'aria-hidden': 'true' }))));
      $('#board thead tr').replaceChildren(...cells);
    }
    for (const th of document.querySelectorAll('#board thead th')) {
      const active = th.dataset.sort === state.sort.key;
      th.setAttribute('aria-sort', active ? (state.sort.dir === 'asc' ? 'ascending' : 'descending') : 'none');
      th.querySelector('.sort-icon').textContent = active ? (state.sort.dir === 'asc' ? '▲' : '▼') : '↕';
    }
    const label = columns.find((c) => c.key === state.sort.key);
    $('#board-caption').textContent = state.sort.key === 'risk' && state.sort.dir === 'desc'
      ? 'Aircraft, riskiest first'
      : `Aircraft sorted by ${label ? label.label.toLowerCase() : state.sort.key}, ${state.sort.dir === 'asc' ? 'ascending' : 'descending'}`;
  }

  function createRowEl(row) {
    const tr = el('tr', { 'data-tail': row.tail },
      el('th', { scope: 'row', class: 'tail-cell' }, tailLink(row.tail)),
      el('td', { 'data-col': 'severity' }),
      el('td', { 'data-col': 'alerts' }),
      (state.meta.columns || []).map((c) => el('td', { 'data-col': c.model, class: 'num' })),
      el('td', { 'data-col': 'risk', class: 'num muted' }),
      el('td', { 'data-col': 'fresh', class: 'num muted' }));
    boardDom.rowEls.set(row.tail, tr);
    return tr;
  }

  /** Fills a row's cells in place (the tail link stays: it may hold the focus). */
  function fillRowEl(tr, row) {
    const sev = row.severity || 'none';
    tr.className = `sev-row-${sev}`;
    const cell = (col) => tr.querySelector(`[data-col="${col}"]`);

    const sevCell = cell('severity');
    sevCell.dataset.severity = sev;
    sevCell.replaceChildren(severityBadge(row.severity));

    const alerts = row.alerts || {};
    const alertCell = cell('alerts');
    for (const s of ['critical', 'warning', 'info']) alertCell.dataset[s] = String(alerts[s] || 0);
    alertCell.replaceChildren(...alertCounts(alerts));
    alertCell.classList.toggle('muted', !row.severity);

    for (const column of state.meta.columns || []) fillValueCell(cell(column.model), column, row.values && row.values[column.model]);

    cell('risk').textContent = isNum(row.risk) ? row.risk.toFixed(2) : '—';
    const fresh = cell('fresh');
    fresh.textContent = fmtAge(row.state && row.state.last_applied_at);
    fresh.title = row.state
      ? `Last event ${fmtUtc(row.state.last_event_time, true)}, applied ${fmtUtc(row.state.last_applied_at, true)}`
      : '';
  }

  function fillValueCell(td, column, value) {
    for (const attr of ['value', 'lower', 'upper']) delete td.dataset[attr];
    td.className = 'num';
    td.title = '';
    if (!value || !isNum(value.value)) {
      td.replaceChildren(el('span', { class: 'muted', text: '—' }));
      return;
    }
    td.dataset.value = String(value.value);
    const interval = column.interval ? fmtInterval(column.unit, value.lower, value.upper) : '';
    if (interval) {
      td.dataset.lower = String(value.lower);
      td.dataset.upper = String(value.upper);
    }
    const breach = breachOf(column.rules, value);
    if (breach) td.classList.add(`breach-${breach}`);
    td.title = `${modelName(column.model)} v${value.model_version}, event ${fmtUtc(value.event_time)}`;
    td.replaceChildren(el('span', { class: 'value', text: fmtValue(column.unit, value.value) }),
      ...(interval ? [el('span', { class: 'interval', text: ` (${interval})` })] : []));
  }

  function renderBoard() {
    if (!state.meta) return;
    renderHead();
    const all = [...state.rows.values()];
    const matching = all.filter(matchesFilter).sort(compareRows);
    // Thousands of rows are no board: the first page by the current sort, and more on demand.
    const shown = matching.slice(0, state.limit);
    // Drop the elements of removed tails; (re)fill the rows that are shown.
    for (const tail of boardDom.rowEls.keys()) if (!state.rows.has(tail)) boardDom.rowEls.delete(tail);
    const rowEls = shown.map((row) => {
      const tr = boardDom.rowEls.get(row.tail) || createRowEl(row);
      if (tr.row !== row) { fillRowEl(tr, row); tr.row = row; }
      return tr;
    });
    const tbody = $('#board tbody');
    placeInOrder(tbody, rowEls.length ? rowEls : [emptyRow(all.length)]);
    renderSummary(all, shown.length, matching.length);
    renderMore(matching.length - shown.length);
    renderAlertList(all);
  }

  function renderMore(hidden) {
    const more = $('#board-more');
    more.hidden = hidden <= 0;
    more.textContent = `Show ${Math.min(hidden, PAGE_ROWS)} more (${hidden} not shown)`;
  }

  function emptyRow(total) {
    const span = boardColumns().length;
    const text = total ? 'No aircraft match the filter.' : 'This instance holds no aircraft yet.';
    return el('tr', { class: 'empty' }, el('td', { colspan: span, text }));
  }

  function renderSummary(all, shownCount, matchingCount) {
    const count = (sev) => all.filter((r) => r.severity === sev).length;
    const parts = [`${all.length} aircraft`];
    for (const sev of ['critical', 'warning', 'info']) if (count(sev)) parts.push(`${count(sev)} ${sev}`);
    if (matchingCount !== all.length) parts.push(`${matchingCount} match`);
    if (shownCount !== matchingCount) parts.push(`showing the first ${shownCount}`);
    const restoring = state.meta.instance && state.meta.instance.restoring;
    if (restoring && restoring.length) parts.push(`partitions ${restoring.join(', ')} restoring: some tails may be missing`);
    $('#board-summary').textContent = parts.join(' · ');
  }

  function renderAlertList(all) {
    const alerts = all.flatMap((r) => r.open_alerts || []).sort((a, b) =>
      SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity]
      || Date.parse(a.raised_at) - Date.parse(b.raised_at)
      || a.tail.localeCompare(b.tail) || a.rule.localeCompare(b.rule));
    const seen = new Set();
    const items = alerts.slice(0, ALERT_ITEMS).map((alert) => {
      const key = `${alert.tail}/${alert.rule}`;
      seen.add(key);
      const signature = `${alert.severity}|${alert.raised_at}`;
      let li = boardDom.alertEls.get(key);
      if (!li || li.signature !== signature) {
        li = alertItem(alert, key, li);
        li.signature = signature;
        boardDom.alertEls.set(key, li);
      }
      return li;
    });
    for (const key of boardDom.alertEls.keys()) if (!seen.has(key)) boardDom.alertEls.delete(key);
    const empty = el('li', { class: 'empty', text: 'No open alerts.' });
    const rest = alerts.length - items.length;
    const tail = rest > 0 ? [el('li', { class: 'empty', text: `and ${rest} more (see each aircraft, or GET /alerts)` })] : [];
    placeInOrder($('#alerts'), items.length ? [...items, ...tail] : [empty]);
    $('#alerts-heading').textContent = `Open alerts (${alerts.length})`;
  }

  /** An open-alert list item; reuses `old`'s link so that a focused link keeps its focus. */
  function alertItem(alert, key, old) {
    const link = (old && old.querySelector('a')) || tailLink(alert.tail);
    link.replaceChildren(el('span', { class: 'alert-tail', text: alert.tail }), ' · ', severityBadge(alert.severity),
      el('span', { class: 'alert-detail' }, el('span', { class: 'visually-hidden', text: ' · ' }),
        `${alert.rule} · raised ${fmtUtc(alert.raised_at)}`));
    return el('li', { 'data-alert': key, 'data-severity': alert.severity, class: `alert-item sev-row-${alert.severity}` }, link);
  }

  function renderInstance() {
    const inst = state.meta && state.meta.instance;
    if (!inst) return;
    const parts = [`This instance: ${inst.id} · partitions ${(inst.partitions || []).join(', ') || 'none'}`];
    if (inst.restoring && inst.restoring.length) parts.push(` (restoring ${inst.restoring.join(', ')})`);
    const links = peerLinks('');
    $('#instance').replaceChildren(...parts, ...(links.length ? [' · peers: ', ...links] : []));
  }

  /** Links to the other instances' pages (http and https URLs only), `hash` appended. */
  function peerLinks(hash) {
    const peers = ((state.meta && state.meta.instance.peers) || []).filter((p) => {
      try { return /^https?:$/.test(new URL(p.url, location.href).protocol); } catch (_) { return false; }
    });
    return peers.flatMap((p, i) => [i ? ', ' : '', el('a', { href: p.url + hash, text: p.name })]);
  }

  /** Once a second: the relative ages ("4 s ago") move on. */
  function tick() {
    for (const tr of boardDom.rowEls.values()) {
      if (!tr.isConnected || !tr.row) continue;
      const fresh = tr.querySelector('[data-col="fresh"]');
      const text = fmtAge(tr.row.state && tr.row.state.last_applied_at);
      if (fresh.textContent !== text) fresh.textContent = text;
    }
    for (const span of document.querySelectorAll('[data-age]')) span.textContent = fmtAge(span.dataset.age);
  }

  function setupBoardControls() {
    $('#board-controls').addEventListener('submit', (event) => event.preventDefault());
    $('#tail-filter').addEventListener('input', (event) => {
      state.filter.text = event.target.value.trim().toLowerCase();
      renderBoard();
    });
    for (const radio of document.querySelectorAll('input[name="sev-filter"]')) {
      radio.addEventListener('change', () => { state.filter.severity = radio.value; renderBoard(); });
    }
    $('#board-more').addEventListener('click', () => { state.limit += PAGE_ROWS; renderBoard(); });
    $('#board thead').addEventListener('click', (event) => {
      const th = event.target.closest('th[data-sort]');
      if (!th) return;
      const key = th.dataset.sort;
      state.sort = state.sort.key === key
        ? { key, dir: state.sort.dir === 'asc' ? 'desc' : 'asc' }
        : { key, dir: defaultDirection(key) };
      renderBoard();
    });
  }

  // ---------------------------------------------------------------- tail page

  const tailView = { tail: null, summary: null, history: null, error: null, busy: false, again: false };

  async function loadTail() {
    if (tailView.busy) { tailView.again = true; return; } // one fetch at a time, then once more
    tailView.busy = true;
    const tail = state.route.tail;
    const base = `/tails/${encodeURIComponent(tail)}`;
    try {
      const [summary, history] = await Promise.all([getJson(base), getJson(`${base}/history`)]);
      Object.assign(tailView, { tail, summary, history, error: null });
    } catch (error) {
      Object.assign(tailView, { tail, summary: null, history: null, error });
    }
    tailView.busy = false;
    if (state.route.view === 'tail' && state.route.tail === tail) renderTail();
    if (tailView.again) { tailView.again = false; if (state.route.view === 'tail') loadTail(); }
  }

  function renderTail() {
    const section = $('#tail-view');
    const tail = state.route.tail;
    section.dataset.tail = tail;
    const row = state.rows.get(tail);
    const heading = el('h1', { id: 'tail-heading', tabindex: '-1', 'data-focus-key': 'heading' }, tail, ' ',
      row ? severityBadge(row.severity) : null);
    const back = el('p', { class: 'back' }, el('a', { href: '#/', text: '← Back to the board' }));
    if (tailView.tail !== tail || (!tailView.summary && !tailView.error)) {
      replaceView(section, [back, heading, el('p', { class: 'muted', text: 'Loading…' })]);
      return;
    }
    if (tailView.error) {
      replaceView(section, [back, heading, tailError(tailView.error)]);
      return;
    }
    const { summary, history } = tailView;
    replaceView(section, [back, heading, tailFacts(summary),
      el('h2', { text: 'Current values' }), currentValues(summary, history, row),
      el('h2', { text: 'Open alerts' }), tailAlerts(summary.alerts || [], history),
      el('h2', { text: 'Trends' }), trends(history)]);
  }

  function tailError(error) {
    if (error.status === 404) {
      const links = peerLinks(`#/tails/${encodeURIComponent(state.route.tail)}`);
      return el('div', { class: 'notice' },
        el('p', { text: 'This instance holds no state for this tail.' }),
        links.length ? el('p', {}, 'It may be held by another instance: ', links) : null);
    }
    if (error.status === 503) return el('p', { class: 'notice', text: 'This tail\'s state is being restored; the page updates when it is back.' });
    return el('p', { class: 'notice', text: `Could not load the tail: ${error.message}` });
  }

  function tailFacts(summary) {
    const s = summary.state || {};
    return el('p', { class: 'facts' },
      `Partition ${s.partition ?? '—'} · ${s.events_applied ?? 0} events applied · last event ${fmtUtc(s.last_event_time)} · updated `,
      el('span', { 'data-age': s.last_applied_at || '', text: fmtAge(s.last_applied_at) }));
  }

  /** The latest value per model: the board row when live (it has the interval), else the
   *  tail summary's predictions (with `interval` when the service sends one). */
  function currentValues(summary, history, row) {
    const predictions = summary.predictions || [];
    const values = (row && row.values) || Object.fromEntries(predictions.map((p) => [p.model, {
      value: p.prediction, lower: p.interval && p.interval.lower, upper: p.interval && p.interval.upper,
      model_version: p.model_version, event_time: p.event_time,
    }]));
    // The interval's nominal coverage (0.8) is only in the tail summary.
    const levelOf = (model) => {
      const p = predictions.find((q) => q.model === model && q.interval);
      return p && isNum(p.interval.level) ? `${Math.round(p.interval.level * 100)} % ` : '';
    };
    const seriesOf = (model) => (history.series || []).find((s) => s.model === model) || {};
    const cards = Object.entries(values).map(([model, v]) => {
      const series = seriesOf(model);
      const column = ((state.meta && state.meta.columns) || []).find((c) => c.model === model) || {};
      const unit = series.unit || column.unit || '';
      const breach = breachOf(series.rules || column.rules, v);
      const interval = fmtInterval(unit, v.lower, v.upper);
      return el('div', { class: `value-card${breach ? ` sev-row-${breach}` : ''}`, 'data-model': model },
        el('p', { class: 'card-label', text: modelName(model) }),
        el('p', { class: 'card-value' }, fmtValue(unit, v.value), breach ? ' ' : null, breach ? severityBadge(breach) : null),
        el('p', { class: 'card-sub', text: [interval && `${levelOf(model)}interval ${interval} ${unitLabel(unit)}`,
          `${model} v${v.model_version}`, `event ${fmtUtc(v.event_time)}`].filter(Boolean).join(' · ') }));
    });
    return cards.length ? el('div', { class: 'cards' }, cards) : el('p', { class: 'muted', text: 'No predictions yet.' });
  }

  function tailAlerts(alerts, history) {
    const units = Object.fromEntries((history.series || []).map((s) => [s.model, s.unit]));
    if (!alerts.length) return el('p', { class: 'muted', text: 'No open alerts.' });
    return el('ul', { class: 'alert-list tail-alerts' }, alerts.map((a) => el('li', {
      class: `alert-item sev-row-${a.severity}`, 'data-alert': `${a.tail}/${a.rule}`, 'data-severity': a.severity,
    }, severityBadge(a.severity), ` ${a.rule} (${a.model})`,
    isNum(a.latest_value) ? ` · latest ${fmtValue(units[a.model], a.latest_value)}` : '',
    ` · raised ${fmtUtc(a.raised_at)} by ${a.raised_by}`)));
  }

  function trends(history) {
    const series = (history.series || []).filter((s) => (s.points || []).length);
    if (!series.length) return el('p', { class: 'muted', text: 'No history yet (it is kept in memory and restarts empty).' });
    const note = el('p', { class: 'muted small', text: `Up to ${history.capacity} points per series are kept by this instance.` });
    // Schedule events carry a flight label: a table reads better than a chart for them.
    const blocks = series.map((s) => (s.points.some((p) => p.label) ? flightsTable(s) : chartFigure(s)));
    return el('div', { class: 'trends' }, blocks, note);
  }

  function flightsTable(series) {
    const rows = [...series.points].reverse().map((p) => el('tr', { 'data-point': '' },
      el('td', { text: p.label || '—' }),
      el('td', { text: fmtUtc(p.event_time) }),
      el('td', { class: 'num' }, el('span', { class: 'meter', 'aria-hidden': 'true' }, meterFill(p.value)),
        ` ${fmtValue(series.unit, p.value)}`),
      el('td', { text: `v${p.model_version}` })));
    return el('figure', { class: 'chart-card' },
      el('figcaption', {}, el('h3', { text: 'Recent flights' }), el('span', { class: 'muted', text: `${modelName(series.model)}, newest first` })),
      scrollBox('Recent flights', el('table', { id: 'flights', class: 'data' },
        el('thead', {}, el('tr', {}, ['Flight', 'Time (UTC)', modelName(series.model), 'Model version']
          .map((h, i) => el('th', { scope: 'col', class: i === 2 ? 'num' : null, text: h })))),
        el('tbody', {}, rows))));
  }

  function meterFill(value) {
    const fill = el('span', { class: 'meter-fill' });
    fill.style.width = `${Math.max(0, Math.min(1, value || 0)) * 100}%`; // CSSOM: allowed by the CSP
    return fill;
  }

  // ---------------------------------------------------------------- charts (SVG)

  // Drawn in these units and scaled to the card's width; the right margin holds the
  // threshold labels.
  const CHART = { w: 640, h: 240, left: 46, right: 96, top: 24, bottom: 40 };

  /** 4–6 round ticks covering [lo, hi]. */
  function niceTicks(lo, hi) {
    if (!(hi > lo)) hi = lo + 1; // a flat series still gets an axis
    const raw = (hi - lo) / 5;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const ticks = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 0.999; v += step) ticks.push(Number(v.toFixed(10)));
    return ticks;
  }

  function thresholdsOf(rules) {
    return (rules || []).flatMap((rule) => (rule.levels || []).map((level) => ({
      severity: level.severity,
      value: level.threshold,
      short: `${level.severity} ${Number(level.threshold.toPrecision(3))}`,
      label: `${level.severity} ${Number(level.threshold.toPrecision(4))}${rule.on === 'lower' ? ' (lower bound)' : rule.on === 'upper' ? ' (upper bound)' : ''}`,
    })));
  }

  function trendOf(points, span) {
    const k = Math.min(20, points.length - 1);
    if (k < 1) return 'a single prediction';
    const change = points[points.length - 1].value - points[points.length - 1 - k].value;
    if (Math.abs(change) < span * 0.03) return 'steady';
    return change < 0 ? 'falling' : 'rising';
  }

  function chartFigure(series) {
    const points = series.points.filter((p) => isNum(p.value));
    const unit = series.unit;
    const name = modelName(series.model);
    const times = points.map((p) => Date.parse(p.event_time));
    let [t0, t1] = [Math.min(...times), Math.max(...times)];
    if (t0 === t1) { t0 -= 3600e3; t1 += 3600e3; }
    const thresholds = thresholdsOf(series.rules);
    const ys = points.flatMap((p) => [p.value, p.lower, p.upper]).filter(isNum).concat(thresholds.map((t) => t.value));
    const ticks = niceTicks(Math.min(0, ...ys), Math.max(...ys));
    const [lo, hi] = [ticks[0], ticks[ticks.length - 1]];
    const plotW = CHART.w - CHART.left - CHART.right;
    const plotH = CHART.h - CHART.top - CHART.bottom;
    const x = (t) => CHART.left + ((t - t0) / (t1 - t0)) * plotW;
    const y = (v) => CHART.top + ((hi - v) / (hi - lo)) * plotH;
    const versions = [...new Set(points.map((p) => p.model_version))];
    const colour = (v) => VERSION_COLOURS[versions.indexOf(v) % VERSION_COLOURS.length];

    const last = points[points.length - 1];
    const interval = fmtInterval(unit, last.lower, last.upper);
    const label = `${name}, ${points.length} predictions, latest ${fmtValue(unit, last.value)}${interval ? ` (${interval})` : ''}, ${trendOf(points, hi - lo)}`;

    const svg = svgEl('svg', {
      viewBox: `0 0 ${CHART.w} ${CHART.h}`, role: 'img', 'aria-label': label, class: 'chart',
      'data-model': series.model, 'data-points': points.length,
    },
    yAxis(ticks, y, unit), xAxis(t0, t1, x),
    bandPath(points, x, y),
    thresholds.map((t) => thresholdLine(t, y(t.value))),
    versionChanges(points, x, colour),
    svgEl('path', { class: 'line', d: points.map((p, i) => `${i ? 'L' : 'M'}${x(times[i]).toFixed(1)},${y(p.value).toFixed(1)}`).join('') }),
    svgEl('g', { class: 'points' }, points.map((p, i) => svgEl('circle', {
      'data-point': '', cx: x(times[i]).toFixed(1), cy: y(p.value).toFixed(1), r: points.length > 60 ? 1.8 : 3, fill: colour(p.model_version),
    }, svgEl('title', { text: pointText(p, unit) })))));

    return el('figure', { class: 'chart-card' },
      el('figcaption', {}, el('h3', { text: name }), el('span', { class: 'muted', text: series.meaning || '' })),
      chartLegend(series, points, versions, colour, thresholds),
      svg,
      dataTable(series, points));
  }

  /** "2013-02-20 16:00 UTC: 9 cycles (3–17), v2": a marker's tooltip. */
  function pointText(p, unit) {
    const interval = fmtInterval(unit, p.lower, p.upper);
    return `${fmtUtc(p.event_time)}: ${fmtValue(unit, p.value)}${interval ? ` (${interval})` : ''}, v${p.model_version}`;
  }

  function yAxis(ticks, y, unit) {
    const fmt = (v) => (unit === 'probability' ? `${Math.round(v * 100)}` : String(Number(v.toPrecision(4))));
    return svgEl('g', { class: 'axis y-axis' },
      ticks.map((v) => [
        svgEl('line', { class: 'grid', x1: CHART.left, x2: CHART.w - CHART.right, y1: y(v), y2: y(v) }),
        svgEl('text', { x: CHART.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: fmt(v) }),
      ]),
      svgEl('text', { class: 'axis-title', x: CHART.left - 6, y: CHART.top - 10, 'text-anchor': 'end', text: unitLabel(unit) }));
  }

  function xAxis(t0, t1, x) {
    const daily = t1 - t0 >= 2 * 86400e3;
    const fmt = (t) => {
      const d = new Date(t);
      return daily ? `${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]}` : `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    };
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => t0 + f * (t1 - t0));
    const base = CHART.h - CHART.bottom;
    return svgEl('g', { class: 'axis x-axis' },
      svgEl('line', { class: 'baseline', x1: CHART.left, x2: CHART.w - CHART.right, y1: base, y2: base }),
      ticks.map((t, i) => svgEl('text', {
        x: x(t), y: base + 15, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', text: fmt(t),
      })),
      svgEl('text', { class: 'axis-title', x: CHART.left + (CHART.w - CHART.left - CHART.right) / 2, y: CHART.h - 4,
        'text-anchor': 'middle', text: `event time (UTC), ${fmtUtc(t0).slice(0, 10)} to ${fmtUtc(t1).slice(0, 10)}` }));
  }

  /** The interval as a filled area: upper bounds left to right, then lower ones back. Points
   *  without both bounds split it. */
  function bandPath(points, x, y) {
    const runs = [[]];
    for (const p of points) {
      if (isNum(p.lower) && isNum(p.upper)) runs[runs.length - 1].push(p);
      else if (runs[runs.length - 1].length) runs.push([]);
    }
    const d = runs.filter((r) => r.length > 1).map((run) => {
      const up = run.map((p) => `${x(Date.parse(p.event_time)).toFixed(1)},${y(p.upper).toFixed(1)}`);
      const down = [...run].reverse().map((p) => `${x(Date.parse(p.event_time)).toFixed(1)},${y(p.lower).toFixed(1)}`);
      return `M${up.join('L')}L${down.join('L')}Z`;
    }).join('');
    return d ? svgEl('path', { class: 'band', d }) : null;
  }

  function thresholdLine(t, yPos) {
    return svgEl('g', { class: `threshold sev-${t.severity}` },
      svgEl('line', { x1: CHART.left, x2: CHART.w - CHART.right, y1: yPos, y2: yPos, stroke: SEVERITY_COLOURS[t.severity] || '#444' }),
      svgEl('text', { x: CHART.w - CHART.right + 6, y: yPos + 4, text: `${SEVERITY_SHAPE[t.severity] || ''} ${t.short}` }));
  }

  /** A dashed vertical line where the model version changes inside the series. */
  function versionChanges(points, x, colour) {
    const marks = [];
    for (let i = 1; i < points.length; i++) {
      const p = points[i];
      if (p.model_version === points[i - 1].model_version) continue;
      const xPos = x(Date.parse(p.event_time));
      marks.push(svgEl('g', { class: 'version-change' },
        svgEl('line', { x1: xPos, x2: xPos, y1: CHART.top, y2: CHART.h - CHART.bottom, stroke: colour(p.model_version) }),
        svgEl('text', { x: xPos + 4, y: CHART.top + 10, text: `v${p.model_version} from here` })));
    }
    return marks;
  }

  function chartLegend(series, points, versions, colour, thresholds) {
    const swatch = (cls, fill) => {
      const s = el('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' });
      if (fill) s.style.background = fill;
      return s;
    };
    const items = versions.map((v) => {
      const n = points.filter((p) => p.model_version === v).length;
      return el('li', {}, swatch('dot', colour(v)), `${series.model} v${v} (${n} points)`);
    });
    if (points.some((p) => isNum(p.lower))) items.push(el('li', {}, swatch('band'), 'interval (lower–upper)'));
    for (const t of thresholds) items.push(el('li', {}, swatch(`dash sev-${t.severity}`), t.label));
    return el('ul', { class: 'legend' }, items);
  }

  function dataTable(series, points) {
    const hasInterval = points.some((p) => isNum(p.lower));
    const head = ['Event time (UTC)', `Value (${unitLabel(series.unit)})`, hasInterval ? 'Interval' : null, 'Version'].filter(Boolean);
    const rows = [...points].reverse().map((p) => el('tr', {},
      el('td', { text: fmtUtc(p.event_time) }),
      el('td', { class: 'num', text: fmtNumber(series.unit, p.value) }),
      hasInterval ? el('td', { class: 'num', text: fmtInterval(series.unit, p.lower, p.upper) || '—' }) : null,
      el('td', { text: `v${p.model_version}` })));
    return el('details', { class: 'data-details', 'data-key': series.model },
      el('summary', { 'data-focus-key': `summary-${series.model}`, text: `Data table (${points.length} points, newest first)` }),
      scrollBox(`${modelName(series.model)} data table`, el('table', { class: 'data' },
        el('caption', { class: 'visually-hidden', text: `${modelName(series.model)} predictions` }),
        el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, rows))));
  }

  // ---------------------------------------------------------------- models panel

  const modelsView = { data: null, drift: new Map(), error: null, busy: false, again: false };

  async function loadModels() {
    if (modelsView.busy) { modelsView.again = true; return; }
    modelsView.busy = true;
    try {
      const data = await getJson('/models');
      const serving = [...new Set(data.models.filter((m) => m.state === 'serving').map((m) => m.name))];
      const drifts = await Promise.all(serving.map((name) => getJson(`/models/${encodeURIComponent(name)}/drift`)
        .then((d) => [name, d], (e) => [name, e.status === 404 ? null : { failed: e.message }])));
      Object.assign(modelsView, { data, drift: new Map(drifts), error: null });
    } catch (error) {
      modelsView.error = error;
    }
    modelsView.busy = false;
    if (state.route.view === 'models') renderModels();
    if (modelsView.again) { modelsView.again = false; if (state.route.view === 'models') loadModels(); }
  }

  function renderModels() {
    const section = $('#models-view');
    const heading = el('h1', { id: 'models-heading', tabindex: '-1', 'data-focus-key': 'heading', text: 'Models' });
    if (modelsView.error) {
      replaceView(section, [heading, el('p', { class: 'notice', text: `Could not load the models: ${modelsView.error.message}` })]);
      return;
    }
    if (!modelsView.data) {
      replaceView(section, [heading, el('p', { class: 'muted', text: 'Loading…' })]);
      return;
    }
    const { models, routes, pins } = modelsView.data;
    replaceView(section, [heading,
      el('h2', { text: 'Versions' }), versionsTable(models),
      el('div', { class: 'two-col' },
        el('div', {}, el('h2', { text: 'Routes' }), routesList(routes || {})),
        el('div', {}, el('h2', { text: 'Pins' }), pinsList(pins || {}))),
      el('h2', { text: 'Drift of the serving versions' }), driftTable()]);
  }

  function stateBadge(s) {
    return el('span', { class: `badge state-${s}`, text: s });
  }

  function versionsTable(models) {
    const sorted = [...models].sort((a, b) => a.name.localeCompare(b.name)
      || b.version.localeCompare(a.version, 'en', { numeric: true }));
    const rows = sorted.map((m) => el('tr', { 'data-model': m.name, 'data-version': m.version, 'data-state': m.state },
      el('th', { scope: 'row', text: m.name }),
      el('td', { text: `v${m.version}` }),
      el('td', {}, stateBadge(m.state), m.pinned ? el('span', { class: 'pin', text: ' pinned' }) : null),
      el('td', {}, m.reason ? el('strong', { text: m.reason }) : null, m.message ? ` ${m.message}` : (m.reason ? '' : '—')),
      el('td', { text: m.feature_set || '—' }),
      el('td', { text: m.backend || '—' }),
      el('td', { class: 'mono', title: m.sha256 || null, text: m.sha256 ? m.sha256.slice(0, 12) : '—' })));
    return scrollBox('Model versions', el('table', { class: 'data models' },
      el('caption', { class: 'visually-hidden', text: 'Every model version and its state' }),
      el('thead', {}, el('tr', {}, ['Model', 'Version', 'State', 'Reason', 'Feature set', 'Backend', 'SHA-256']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows)));
  }

  function routesList(routes) {
    const entries = Object.entries(routes);
    if (!entries.length) return el('p', { class: 'muted', text: 'No routes.' });
    return el('ul', { class: 'plain' }, entries.map(([set, models]) => el('li', {},
      el('strong', { text: set }), ' → ',
      models.map((m) => (m.serving ? `${m.model} v${m.serving}` : `${m.model} (none serving)`)).join(', '))));
  }

  function pinsList(pins) {
    const entries = Object.entries(pins);
    if (!entries.length) return el('p', { class: 'muted', text: 'No pins: the newest valid version serves.' });
    return el('ul', { class: 'plain' }, entries.map(([name, version]) => el('li', {}, el('strong', { text: name }), ` pinned to v${version}`)));
  }

  function driftTable() {
    const rows = [...modelsView.drift.entries()].map(([name, d]) => el('tr', { 'data-drift': name },
      el('th', { scope: 'row', text: name }), ...driftCells(d)));
    if (!rows.length) return el('p', { class: 'muted', text: 'No model is serving.' });
    return scrollBox('Drift', el('table', { class: 'data drift' },
      el('caption', { class: 'visually-hidden', text: 'Drift per serving model' }),
      el('thead', {}, el('tr', {}, ['Model', 'Version', 'Level', 'Worst feature (PSI)', 'Window rows', 'Last evaluated', 'Open drift alerts']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows)));
  }

  function driftCells(d) {
    if (!d || d.failed) {
      return [el('td', { colspan: 6, class: 'muted', text: d ? `Could not load: ${d.failed}` : 'no drift window yet' })];
    }
    const w = d.window || {};
    const level = d.status === 'ok' && d.level
      ? el('span', { class: `badge sev-${d.level === 'ok' ? 'ok' : d.level}`, text: d.level })
      : el('span', { class: 'muted', text: (d.status || '').replace('_', ' ') });
    const worst = (d.features || []).find((f) => !f.excluded);
    return [
      el('td', { text: `v${d.version}` }),
      el('td', { 'data-level': d.level || d.status }, level),
      el('td', { text: worst ? `${worst.name} (${worst.psi.toFixed(3)})` : '—' }),
      el('td', { class: 'num', text: `${w.rows ?? 0} of ${w.capacity ?? 0}${d.status === 'warming_up' ? ` (needs ${w.min_rows})` : ''}` }),
      el('td', { text: w.evaluated_event_time ? fmtUtc(w.evaluated_event_time) : '—' }),
      el('td', { text: (d.alerts || []).map((a) => `${a.severity} ${a.rule}`).join(', ') || 'none' }),
    ];
  }

  // ---------------------------------------------------------------- routing

  function parseRoute() {
    const hash = location.hash.replace(/^#/, '') || '/';
    if (hash.startsWith('/tails/')) {
      try { return { view: 'tail', tail: decodeURIComponent(hash.slice('/tails/'.length)) }; } catch (_) { /* malformed */ }
    }
    if (hash === '/models') return { view: 'models' };
    return { view: 'board' };
  }

  /** Fetches what the open view shows (after navigation or a reconnection). */
  function refreshOpenView() {
    if (state.route.view === 'tail') loadTail();
    if (state.route.view === 'models') loadModels();
  }

  function onRoute(initial) {
    state.route = parseRoute();
    const { view } = state.route;
    $('#board-view').hidden = view !== 'board';
    $('#tail-view').hidden = view !== 'tail';
    $('#models-view').hidden = view !== 'models';
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `${{ board: 'Fleet board', models: 'Models', tail: state.route.tail }[view]} · fleetscore`;
    if (view === 'tail') renderTail();
    if (view === 'models') renderModels();
    refreshOpenView();
    // Move the focus to the new view's heading so that keyboard and screen-reader users land there.
    if (!initial) {
      const heading = document.querySelector(`#${view}-view h1`);
      if (heading) heading.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    setupBoardControls();
    window.addEventListener('hashchange', () => onRoute(false));
    onRoute(true);
    setLive('connecting');
    connect();
    setInterval(tick, 1000);
  }

  start();
})();
