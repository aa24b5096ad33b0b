// The alert desk: filter alerts, acknowledge, assign, and resolve with a note; and the
// audit trail of what people did.

import { ApiError, get, post } from './api.js';
import { gradeBadge } from './views.js';
import { GRADES, L, MECHANISMS, SECTORS, STATES, bi, biText, esc, fmtTime, lookup } from './i18n.js';

const PAGE = 50;

function options(pairs, selected) {
  return pairs
    .map(([v, label]) => `<option value="${esc(v)}"${v === selected ? ' selected' : ''}>${esc(label)}</option>`)
    .join('');
}

/** The alert desk bound to its section's elements. `districts` maps code -> [中文, pinyin]. */
export class Desk {
  constructor(root, districts, setStatus) {
    this.root = root;
    this.districts = districts;
    this.setStatus = setStatus;
    this.form = root.querySelector('#alert-filters');
    this.table = root.querySelector('#alert-table');
    this.more = root.querySelector('#alert-more');
    this.count = root.querySelector('#alert-count');
    this.audit = root.querySelector('#audit-table');
    this.next = null;
    this.buildFilters();
    this.table.querySelector('thead').innerHTML = `<tr><th>${bi(L.severity)}</th><th>${bi(L.entity)}</th><th>${bi(L.district)}</th>
      <th>${bi(L.mechanism)}</th><th>${bi(L.opened)}</th><th>${bi(L.state)}</th><th>${bi(L.assignee)}</th>
      <th>${bi(L.respondBy)}</th><th>${bi(L.actions)}</th></tr>`;
    this.audit.querySelector('thead').innerHTML = `<tr><th>${bi(L.when)}</th><th>${bi(L.actor)}</th><th>${bi(L.action)}</th>
      <th>${bi(L.alertId)}</th><th>${bi(L.detail)}</th></tr>`;
    this.more.addEventListener('click', () => this.load(true));
    this.table.addEventListener('click', (e) => this.onClick(e));
  }

  buildFilters() {
    const any = biText(L.any);
    const state = [
      ['active', '待处置+已确认 Open + acknowledged'],
      ...Object.entries(STATES).map(([k, v]) => [k, biText(v)]),
      ['', any],
    ];
    const severity = [['', any], ...['red', 'orange', 'yellow', 'blue'].map((s) => [s, biText(GRADES[s])])];
    const mechanism = [['', any], ...Object.entries(MECHANISMS).map(([k, v]) => [k, `${v[0]} ${k}`])];
    const district = [['', any], ...[...this.districts].map(([code, n]) => [code, `${n[0]} ${n[1]}`])];
    const sector = [['', any], ...Object.entries(SECTORS).map(([k, v]) => [k, biText(v)])];
    const sel = (name, label, opts, value) =>
      `<label><span>${bi(label)}</span><select name="${name}" id="filter-${name}">${options(opts, value)}</select></label>`;
    this.form.innerHTML = [
      sel('state', L.state, state, 'active'),
      sel('severity', L.severity, severity, ''),
      sel('mechanism', L.mechanism, mechanism, ''),
      sel('district', L.district, district, ''),
      sel('sector', L.sector, sector, ''),
      `<label><span>${bi(L.since)}</span><input type="date" name="since" id="filter-since"></label>`,
    ].join('');
    this.form.addEventListener('change', () => this.load(false));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.load(false);
    });
  }

  filters() {
    const f = Object.fromEntries(new FormData(this.form).entries());
    return { ...f, limit: PAGE };
  }

  /** Shows the desk: loads the first page of alerts and the audit trail. */
  async show() {
    await Promise.all([this.load(false), this.loadAudit()]);
  }

  async load(append) {
    const params = this.filters();
    if (append && this.next) params.cursor = this.next;
    const body = this.table.querySelector('tbody');
    try {
      const page = await get('/alerts', params);
      if (!append) body.replaceChildren();
      for (const a of page.items) body.append(...this.rows(a));
      this.next = page.next || null;
      this.more.hidden = !this.next;
      this.count.innerHTML = `${bi(L.total)} <b id="alert-total">${page.total}</b>`;
      if (!append && !page.items.length) {
        body.innerHTML = `<tr><td colspan="9" class="small">${bi(L.none)}</td></tr>`;
      }
      this.setStatus('');
    } catch (e) {
      this.setStatus(e instanceof ApiError ? e.message : String(e), true);
    }
  }

  async loadAudit() {
    try {
      const page = await get('/audit', { limit: 20 });
      this.audit.querySelector('tbody').innerHTML =
        page.items
          .map(
            (e) => `<tr><td>${esc(fmtTime(e.at))}</td><td>${esc(e.actor)} <span class="small">${esc(e.role)}</span></td>
              <td>${esc(e.action)}</td><td class="small">${esc(e.alert_id)}</td><td>${esc(e.detail || '')}</td></tr>`,
          )
          .join('') || `<tr><td colspan="5" class="small">${bi(L.none)}</td></tr>`;
    } catch (e) {
      this.audit.querySelector('tbody').innerHTML = `<tr><td colspan="5" class="error">${esc(e.message)}</td></tr>`;
    }
  }

  /** The table row of an alert (and no form row). */
  rows(a) {
    const tr = document.createElement('tr');
    tr.dataset.alertId = a.id;
    tr.dataset.state = a.state;
    const district = this.districts.get(a.district_code);
    const entity =
      a.entity_kind === 'institution'
        ? `<a href="#/institution/${encodeURIComponent(a.entity_id)}">${esc(a.entity_name)}</a>`
        : esc(a.entity_name);
    const active = a.state === 'open' || a.state === 'acknowledged';
    const mech = lookup(MECHANISMS, a.mechanism);
    tr.innerHTML = `<td>${gradeBadge(a.severity)}</td>
      <td>${entity} <span class="small">${esc(a.entity_id)}</span>
        <div class="small summary-text">${esc(a.evidence?.summary || '')}</div></td>
      <td>${district ? `<a href="#/map/${esc(a.district_code)}">${esc(district[0])}</a>` : esc(a.district_code)}</td>
      <td>${esc(mech[0])}<div class="small">${esc(mech[1])}</div><div class="small">${esc(a.owner || '')}</div></td>
      <td>${esc(a.period)}<div class="small">${bi(lookup(SECTORS, a.sector))}</div></td>
      <td class="state state-${esc(a.state)}" data-state="${esc(a.state)}">${bi(lookup(STATES, a.state))}</td>
      <td class="assignee">${esc(a.assignee || '—')}${a.note ? `<div class="small">${esc(a.note)}</div>` : ''}</td>
      <td>${esc(fmtTime(a.respond_by))}</td>
      <td class="actions">${
        active
          ? `${a.state === 'open' ? `<button type="button" data-action="ack">${bi(L.ack)}</button>` : ''}
             <button type="button" data-action="assign">${bi(L.assign)}</button>
             <button type="button" data-action="resolve">${bi(L.resolve)}</button>`
          : ''
      }</td>`;
    return [tr];
  }

  replaceRow(old, alert) {
    const form = old.nextElementSibling;
    if (form && form.classList.contains('form-row')) form.remove();
    old.replaceWith(...this.rows(alert));
  }

  async onClick(e) {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    const tr = button.closest('tr');
    const id = tr.dataset.alertId;
    const action = button.dataset.action;
    if (action === 'ack') {
      await this.act(tr, id, 'ack', {});
    } else if (action === 'assign' || action === 'resolve') {
      this.openForm(tr, id, action);
    }
  }

  openForm(tr, id, action) {
    const existing = tr.nextElementSibling;
    if (existing && existing.classList.contains('form-row')) existing.remove();
    const form = document.createElement('tr');
    form.className = 'form-row';
    const label = action === 'assign' ? L.assignee : L.note;
    form.innerHTML = `<td colspan="9"><form class="act-form" data-action="${action}">
      <label>${bi(label)} <input name="value" required maxlength="1000" autocomplete="off"></label>
      <button type="submit" class="primary">${bi(action === 'assign' ? L.assign : L.resolve)}</button>
      <button type="button" data-cancel>${bi(L.cancel)}</button>
      <span class="error" role="alert"></span></form></td>`;
    tr.after(form);
    const f = form.querySelector('form');
    const input = f.querySelector('input');
    input.focus();
    f.querySelector('[data-cancel]').addEventListener('click', () => form.remove());
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) {
        f.querySelector('.error').textContent = biText(action === 'resolve' ? L.noteRequired : L.assignee);
        return;
      }
      const body = action === 'assign' ? { assignee: value } : { note: value };
      const ok = await this.act(tr, id, action, body, f.querySelector('.error'));
      if (ok) form.remove();
    });
  }

  /** Posts an action; on success replaces the row with the alert returned. */
  async act(tr, id, action, body, errorEl) {
    const buttons = tr.querySelectorAll('button');
    buttons.forEach((b) => (b.disabled = true));
    try {
      const alert = await post(`/alerts/${encodeURIComponent(id)}/${action}`, body);
      if (alert && alert.status === 'forwarded') {
        // Another instance holds the alert (202): the change shows once it has applied it.
        this.setStatus(`${id}: ${biText(L.forwarded)}`);
        return true;
      }
      this.replaceRow(tr, alert);
      this.setStatus(`${id}: ${biText(lookup(STATES, alert.state))}`);
      this.loadAudit();
      return true;
    } catch (e) {
      const msg = e instanceof ApiError && e.status === 403 ? `${biText(L.forbidden)}: ${e.detail}` : e.message;
      if (errorEl) errorEl.textContent = msg;
      this.setStatus(msg, true);
      buttons.forEach((b) => (b.disabled = false));
      return false;
    }
  }
}
