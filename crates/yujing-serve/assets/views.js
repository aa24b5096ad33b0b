// The district drill-down, the map summary and the institution page (HTML built from the
// API's JSON; every value is escaped).

import { scoreChart } from './chart.js';
import {
  GRADES, INDICATORS, L, MECHANISMS, REGIONS, SECTORS, STATES, bi, esc, fmtIndicator, fmtScore, fmtTime, fmtYi, lookup,
} from './i18n.js';

/** A grade badge. */
export function gradeBadge(grade) {
  const g = grade || 'none';
  return `<span class="badge g-${esc(g)}" data-grade="${esc(g)}">${bi(GRADES[g] || L.noData)}</span>`;
}

function pct(v) {
  return v === null || v === undefined ? '—' : `${(v * 100).toFixed(2)}%`;
}

/** A probability (0-1) as a percentage. */
function pctP(v) {
  return `${(Number(v) * 100).toFixed(1)}%`;
}

/** The calibrated probability of an event within the horizon (absent without a [probability] model). */
function pEvent(p) {
  if (!p) return '';
  const label = ['事件概率', `P(event, ${Number(p.horizon_months)}m)`];
  return `<span id="p-event" class="${p.flagged ? 'flagged' : ''}" title="${esc(p.period)}">${bi(label)} <b>${pctP(p.p)}</b>${p.flagged ? ' ⚑' : ''}</span>`;
}

function openAlerts(counts) {
  if (!counts) return '—';
  const parts = ['red', 'orange', 'yellow', 'blue']
    .filter((s) => counts[s])
    .map((s) => `<span class="badge g-${s}">${esc(GRADES[s][0])} ${counts[s]}</span>`);
  return parts.length ? parts.join(' ') : `<span class="small">${bi(L.none)}</span>`;
}

function gradeCounts(counts) {
  if (!counts) return '';
  return ['red', 'orange', 'yellow', 'blue', 'normal']
    .map((g) => `<span class="badge g-${g}" title="${esc(GRADES[g][1])}">${counts[g] ?? 0}</span>`)
    .join(' ');
}

/** The figures of one entity (city, region or district) as a definition list. */
function figures(e) {
  return `<dl class="kv">
    <dt>${bi(L.score)}</dt><dd><b>${fmtScore(e.score)}</b> ${gradeBadge(e.grade)}</dd>
    <dt>${bi(L.institutions)}</dt><dd>${e.institutions} &nbsp; ${gradeCounts(e.grade_counts)}</dd>
    <dt>${bi(L.exposure)}</dt><dd>${fmtYi(e.exposure)}</dd>
    <dt>${bi(L.nplRatio)}</dt><dd>${pct(e.npl_ratio)}</dd>
    <dt>${bi(L.payoutRate)}</dt><dd>${pct(e.payout_rate)}</dd>
    <dt>${bi(L.alerts)}</dt><dd>${openAlerts(e.open_alerts)}</dd>
  </dl>`;
}

/** The summary under the map: the city, and the selected region when there is one. */
export function renderSummary(el, city, region) {
  const block = (title, e) =>
    e
      ? `<div><b>${title}</b> ${fmtScore(e.score)} ${gradeBadge(e.grade)} · ${bi(L.institutions)} ${e.institutions}
          · ${bi(L.nplRatio)} ${pct(e.npl_ratio)} · ${bi(L.payoutRate)} ${pct(e.payout_rate)}
          · ${bi(L.alerts)} ${openAlerts(e.open_alerts)}</div>`
      : '';
  el.innerHTML =
    block(`${esc(L.city[0])} <span class="en">${esc(L.city[1])}</span>`, city) +
    (region ? block(bi(lookup(REGIONS, region.id)), region) : '');
}

function alertRows(alerts) {
  if (!alerts.length) return `<p class="small">${bi(L.none)}</p>`;
  return `<table class="table"><thead><tr><th>${bi(L.severity)}</th><th>${bi(L.entity)}</th><th>${bi(L.mechanism)}</th><th>${bi(L.state)}</th></tr></thead><tbody>${alerts
    .map(
      (a) => `<tr data-alert-id="${esc(a.id)}"><td>${gradeBadge(a.severity)}</td>
        <td>${a.entity_kind === 'institution' ? `<a href="#/institution/${encodeURIComponent(a.entity_id)}">${esc(a.entity_name)}</a>` : esc(a.entity_name)}
          <div class="small">${esc(a.summary)}</div></td>
        <td>${bi(lookup(MECHANISMS, a.mechanism))}</td>
        <td class="state state-${esc(a.state)}">${bi(lookup(STATES, a.state))}</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

/** The district drill-down: its figures, sectors, history, institutions and alerts. */
export function renderDistrict(panel, d) {
  const cur = d.current;
  const sectors = d.sectors
    .map(
      (s) => `<tr><td>${bi(lookup(SECTORS, s.sector))}</td><td class="num">${fmtScore(s.score)}</td><td>${gradeBadge(s.grade)}</td>
        <td class="num">${s.institutions}</td><td class="num">${pct(s.npl_ratio)}</td><td class="num">${pct(s.payout_rate)}</td></tr>`,
    )
    .join('');
  const withP = d.institutions.find((i) => i.p_event);
  const insts = d.institutions
    .map(
      (i) => `<tr class="clickable" data-institution-id="${esc(i.id)}" tabindex="0">
        <td><a href="#/institution/${encodeURIComponent(i.id)}">${esc(i.name)}</a><div class="small">${esc(i.id)}</div></td>
        <td>${bi(lookup(SECTORS, i.sector))}</td>
        <td class="num">${fmtScore(i.score)}</td><td>${gradeBadge(i.grade)}</td>
        <td class="num">${fmtYi(i.exposure)}</td>${withP ? `<td class="num">${i.p_event ? pctP(i.p_event.p) : '—'}</td>` : ''}</tr>`,
    )
    .join('');
  const history = d.history.map((h) => ({ period: h.period, score: h.score, grade: h.grade }));
  panel.innerHTML = `
    <h2 id="district-name" data-code="${esc(d.code)}">${esc(d.name)} <span class="en">${esc(d.name_pinyin)}</span></h2>
    <div class="small">${esc(d.code)} · ${bi(lookup(REGIONS, d.region))} · ${bi(L.period)} ${esc(d.period || '—')} · ${bi(lookup(SECTORS, d.sector))}</div>
    ${cur ? figures(cur) : `<p class="small">${bi(L.noData)}</p>`}
    ${sectors ? `<table class="table"><thead><tr><th>${bi(L.sector)}</th><th class="num">${bi(L.score)}</th><th>${bi(L.grade)}</th><th class="num">${bi(L.count)}</th><th class="num">${bi(L.nplRatio)}</th><th class="num">${bi(L.payoutRate)}</th></tr></thead><tbody>${sectors}</tbody></table>` : ''}
    <h3>${bi(L.institutions)} <span class="small">(${d.institutions.length})</span></h3>
    <table id="district-institutions" class="table"><thead><tr><th>${bi(L.institution)}</th><th>${bi(L.sector)}</th><th class="num">${bi(L.score)}</th><th>${bi(L.grade)}</th><th class="num">${bi(L.exposure)}</th>${withP ? `<th class="num">${bi(['事件概率', `P(event, ${Number(withP.p_event.horizon_months)}m)`])}</th>` : ''}</tr></thead>
      <tbody>${insts || `<tr><td colspan="5" class="small">${bi(L.none)}</td></tr>`}</tbody></table>
    <h3>${bi(L.alerts)}</h3>
    ${alertRows(d.alerts)}
    <h3>${bi(L.history)}</h3>
    ${history.length ? scoreChart(history) : `<p class="small">${bi(L.noData)}</p>`}`;
  for (const tr of panel.querySelectorAll('tr[data-institution-id]')) {
    const go = (e) => {
      if (e.target.closest('a')) return;
      location.hash = `#/institution/${encodeURIComponent(tr.dataset.institutionId)}`;
    };
    tr.addEventListener('click', go);
    tr.addEventListener('keydown', (e) => e.key === 'Enter' && go(e));
  }
}

/** One indicator row of the breakdown. */
function indicatorRow(p) {
  const name = lookup(INDICATORS, p.indicator);
  const cut = p.safe !== null && p.safe !== undefined
    ? `${fmtIndicator(p.indicator, p.safe)} → ${fmtIndicator(p.indicator, p.critical)}`
    : '—';
  return `<tr data-indicator="${esc(p.indicator)}"><td>${bi(name)}</td>
    <td class="num">${fmtIndicator(p.indicator, p.value)}</td><td class="num">${cut}</td>
    <td class="num"><meter min="0" max="100" low="40" high="75" optimum="0" value="${Number(p.sub_score)}"></meter> ${Number(p.sub_score).toFixed(0)}</td>
    <td class="num">${Number(p.weight).toFixed(2)}</td><td class="num">${Number(p.points).toFixed(1)}</td></tr>`;
}

/**
 * The institution page. `districtHistory` (optional) is the district's score history in
 * the institution's sector, drawn dashed for comparison. `onPeriod(period)` is called
 * when a point of the chart is clicked.
 */
export function renderInstitution(section, inst, districtHistory, onPeriod) {
  const s = inst.score;
  const rows = s ? s.indicators.map(indicatorRow).join('') : '';
  const reports = inst.reports
    .slice(-8)
    .reverse()
    .map(
      (r) => `<tr><td>${esc(r.period)}</td><td class="small">${esc(r.report_id)}</td><td class="num">${r.revision}</td><td>${esc(fmtTime(r.submitted_at))}</td>
        <td class="small">${Object.entries(r.metrics || {})
          .map(([k, v]) => `${esc(k)} ${typeof v === 'number' ? esc(v.toLocaleString('en-US', { maximumFractionDigits: 4 })) : esc(v)}`)
          .join(' · ')}</td></tr>`,
    )
    .join('');
  const history = inst.history.map((h) => ({ period: h.period, score: h.score, grade: h.grade }));
  const extra = districtHistory ? districtHistory.map((h) => ({ period: h.period, score: h.score })) : null;
  section.innerHTML = `
    <p><a href="#/map/${esc(inst.district_code)}">← ${bi(L.back)}</a></p>
    <div class="inst-head">
      <h2 id="institution-name">${esc(inst.name)}</h2>
      <span class="small">${esc(inst.id)}</span>
      <span>${bi(lookup(SECTORS, inst.sector))}</span>
      <span><a href="#/map/${esc(inst.district_code)}">${esc(inst.district_name)}</a> <span class="small">${esc(inst.district_code)}</span></span>
      ${s ? `<span>${bi(L.score)} <b>${fmtScore(s.score)}</b> ${gradeBadge(s.grade)}</span>` : ''}
      ${pEvent(inst.p_event)}
    </div>
    <div class="inst-grid">
      <div class="panel">
        <h3>${bi(L.history)}</h3>
        <div id="institution-chart">${history.length ? scoreChart(history, extra) : `<p class="small">${bi(L.noData)}</p>`}</div>
        <p class="small">— ${esc(inst.name)} &nbsp; ┄ ${esc(inst.district_name)} ${bi(lookup(SECTORS, inst.sector))}</p>
      </div>
      <div class="panel">
        <h3>${bi(L.breakdown)} ${s ? `<span class="small">${bi(L.period)} ${esc(s.period)}</span>` : ''}</h3>
        ${s ? `<table id="breakdown" class="table"><thead><tr><th>${bi(L.indicator)}</th><th class="num">${bi(L.value)}</th><th class="num">${bi(L.cutoffs)}</th><th class="num">${bi(L.subScore)}</th><th class="num">${bi(L.weight)}</th><th class="num">${bi(L.points)}</th></tr></thead>
          <tbody>${rows}
            <tr><td colspan="5">${bi(L.base)}</td><td class="num">${fmtScore(s.base_score)}</td></tr>
            <tr><td colspan="5">${bi(L.trend)} ${s.trend_z !== null && s.trend_z !== undefined ? `<span class="small">z = ${Number(s.trend_z).toFixed(2)}</span>` : ''}</td><td class="num">${Number(s.trend_points).toFixed(1)}</td></tr>
            <tr><th colspan="5">${bi(L.composite)}</th><th class="num">${fmtScore(s.score)}</th></tr>
          </tbody></table>
          <p class="explain">${esc(s.explanation)}</p>` : `<p class="small">${bi(L.noData)}</p>`}
      </div>
    </div>
    <h3>${bi(L.alerts)}</h3>
    ${alertRows(inst.alerts)}
    <h3>报送记录 <span class="en">Reports</span></h3>
    <table class="table"><thead><tr><th>${bi(L.period)}</th><th>ID</th><th class="num">修订 <span class="en">Rev.</span></th><th>报送时间 <span class="en">Submitted</span></th><th>指标 <span class="en">Metrics</span></th></tr></thead><tbody>${reports}</tbody></table>`;
  for (const dot of section.querySelectorAll('#institution-chart .dot')) {
    dot.addEventListener('click', () => onPeriod(dot.dataset.period));
  }
}
