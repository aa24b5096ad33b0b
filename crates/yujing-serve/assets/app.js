// The page's entry module: sign-in, routing (#/map, #/map/<code>, #/institution/<id>,
// #/alerts), the map's selectors and the wiring of the views.

import { ApiError, api, get, getToken, setToken, setUnauthorizedHandler } from './api.js';
import { Desk } from './desk.js';
import { GRADES, L, REGIONS, SECTORS, bi, biText, esc, fmtScore } from './i18n.js';
import { drawMap, legendHtml } from './map.js';
import { renderDistrict, renderInstitution, renderSummary } from './views.js';

const $ = (sel) => document.querySelector(sel);

const state = {
  sector: 'all',
  period: '', // '' = the API's default period
  region: '',
  district: null,
  riskmapKey: null,
  riskmap: null,
  geo: null,
  map: null,
  desk: null,
  regionOf: new Map(), // district code -> region id
  names: new Map(), // district code -> [中文, pinyin]
};

function setStatus(text, error = false) {
  const el = $('#status');
  el.textContent = text || '';
  el.classList.toggle('error', !!error);
}

function showLogin(message) {
  $('#app').hidden = true;
  $('#session').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token-input').focus();
}

async function signIn(token) {
  // A token is good when the API accepts it; any answer but 401 means it is known.
  try {
    await api('/riskmap?level=district', { token });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
  }
  setToken(token);
}

function fillSelectors() {
  const region = [['', biText(L.allRegions)], ...Object.entries(REGIONS).map(([k, v]) => [k, `${v[0]} ${v[1]}`])];
  $('#sel-region').innerHTML = region.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join('');
  $('#sel-sector').innerHTML = Object.entries(SECTORS)
    .sort(([a], [b]) => (a === 'all' ? -1 : b === 'all' ? 1 : 0))
    .map(([k, v]) => `<option value="${esc(k)}">${esc(biText(v))}</option>`)
    .join('');
  $('#legend').innerHTML = legendHtml(GRADES, bi, L);
  $('#sel-region').addEventListener('change', (e) => {
    state.region = e.target.value;
    paintMap();
    loadSummary();
  });
  $('#sel-sector').addEventListener('change', (e) => {
    state.sector = e.target.value;
    refreshMap();
  });
  $('#sel-period').addEventListener('change', (e) => {
    state.period = e.target.value;
    refreshMap();
  });
}

async function loadGeo() {
  if (state.geo) return;
  const res = await fetch('/assets/chongqing.geojson');
  if (!res.ok) throw new Error(`chongqing.geojson: HTTP ${res.status}`);
  state.geo = await res.json();
  for (const f of state.geo.features) {
    state.names.set(f.properties.code, [f.properties.name, f.properties.name_en]);
    state.regionOf.set(f.properties.code, f.properties.region);
  }
  state.map = drawMap($('#map'), state.geo, (code) => {
    location.hash = `#/map/${code}`;
  });
  $('#map').setAttribute('aria-busy', 'false');
}

/** Colours the map from the loaded risk map and the region filter. */
function paintMap() {
  if (!state.map || !state.riskmap) return;
  const info = new Map();
  for (const e of state.riskmap.entities) {
    info.set(e.id, { grade: e.grade, label: `${fmtScore(e.score)} ${GRADES[e.grade][0]} ${GRADES[e.grade][1]}` });
  }
  const region = state.region;
  const inRegion = region ? (code) => state.regionOf.get(code) === region : null;
  state.map.colour(info, inRegion);
  state.map.zoom(inRegion);
  $('#map').dataset.period = state.riskmap.period || '';
  $('#map').dataset.sector = state.riskmap.sector || '';
}

async function loadSummary() {
  const params = { sector: state.sector, period: state.riskmap?.period || '' };
  const el = $('#summary');
  try {
    const [city, regions] = await Promise.all([
      get('/riskmap', { ...params, level: 'city' }),
      state.region ? get('/riskmap', { ...params, level: 'region' }) : Promise.resolve(null),
    ]);
    const region = regions ? regions.entities.find((e) => e.id === state.region) : null;
    renderSummary(el, city.entities[0], region);
  } catch (e) {
    // A district officer may not read city-wide figures: leave the summary out.
    el.innerHTML = e instanceof ApiError && e.status === 403 ? '' : `<span class="error">${esc(e.message)}</span>`;
  }
}

/** Loads the risk map for the selected sector and period (once per choice) and paints it. */
async function refreshMap(force = false) {
  const key = `${state.sector}|${state.period}`;
  if (!force && state.riskmapKey === key && state.riskmap) return;
  setStatus(biText(L.loading));
  try {
    const rm = await get('/riskmap', { level: 'district', sector: state.sector, period: state.period });
    state.riskmap = rm;
    state.riskmapKey = key;
    const periods = [...rm.periods].reverse();
    $('#sel-period').innerHTML = periods
      .map((p) => `<option value="${esc(p)}"${p === rm.period ? ' selected' : ''}>${esc(p)}</option>`)
      .join('');
    paintMap();
    setStatus('');
    loadSummary();
    if (state.district) loadDistrict(state.district);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function loadDistrict(code) {
  state.district = code;
  state.map?.select(code);
  const panel = $('#district-panel');
  panel.setAttribute('aria-busy', 'true');
  try {
    const d = await get(`/districts/${code}`, { sector: state.sector, period: state.riskmap?.period || '' });
    renderDistrict(panel, d);
  } catch (e) {
    const name = state.names.get(code) || [code, ''];
    panel.innerHTML = `<h2>${esc(name[0])} <span class="en">${esc(name[1])}</span></h2><p class="error">${esc(e.message)}</p>`;
  } finally {
    panel.setAttribute('aria-busy', 'false');
  }
}

async function showInstitution(id, period) {
  const section = $('#view-institution');
  section.innerHTML = `<p class="small">${bi(L.loading)}</p>`;
  try {
    const inst = await get(`/institutions/${encodeURIComponent(id)}`, { period });
    let districtHistory = null;
    try {
      const d = await get(`/districts/${inst.district_code}`, { sector: inst.sector });
      districtHistory = d.history;
    } catch {
      districtHistory = null;
    }
    renderInstitution(section, inst, districtHistory, (p) => {
      location.hash = `#/institution/${encodeURIComponent(id)}/${p}`;
    });
    document.title = `${inst.name} · 渝警 yujing`;
  } catch (e) {
    section.innerHTML = `<p><a href="#/map">← ${bi(L.back)}</a></p><p class="error">${esc(e.message)}</p>`;
  }
}

function showView(name) {
  for (const v of ['map', 'institution', 'alerts']) $(`#view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll('#tabs a')) {
    a.classList.toggle('active', a.dataset.tab === name || (name === 'institution' && a.dataset.tab === 'map'));
  }
}

async function route() {
  const parts = (location.hash || '#/map').replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [view, arg, arg2] = parts;
  setStatus('');
  if (view === 'institution' && arg) {
    showView('institution');
    await showInstitution(arg, arg2 || '');
  } else if (view === 'alerts') {
    showView('alerts');
    document.title = '预警台 Alert desk · 渝警 yujing';
    await state.desk.show();
  } else {
    showView('map');
    document.title = '风险地图 Risk map · 渝警 yujing';
    await refreshMap();
    if (arg && /^\d{6}$/.test(arg)) {
      await loadDistrict(arg);
    }
  }
}

async function start() {
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#session').hidden = false;
  try {
    await loadGeo();
  } catch (e) {
    setStatus(e.message, true);
  }
  if (!state.desk) state.desk = new Desk($('#view-alerts'), state.names, setStatus);
  await route();
}

function init() {
  setUnauthorizedHandler(() => {
    setToken(null);
    state.riskmap = null;
    state.riskmapKey = null;
    showLogin(biText(['令牌无效或已失效，请重新登录', 'The token was not accepted; sign in again']));
  });
  // `…/#token=XYZ` signs in (the demo prints such a link) and is then removed from the URL.
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    setToken(decodeURIComponent(m[1]));
    history.replaceState(null, '', `${location.pathname}#/map`);
  }
  fillSelectors();
  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = $('#token-input').value.trim();
    if (!token) return;
    try {
      await signIn(token);
      $('#token-input').value = '';
      await start();
    } catch (err) {
      $('#login-error').textContent = biText(['令牌无效', 'Unknown token']) + ` (${err.detail || err.message})`;
    }
  });
  $('#sign-out').addEventListener('click', () => {
    setToken(null);
    state.riskmap = null;
    state.riskmapKey = null;
    showLogin('');
  });
  window.addEventListener('hashchange', () => {
    if (getToken()) route();
  });
  if (getToken()) start();
  else showLogin('');
}

init();
