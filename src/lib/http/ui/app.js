// akkaflow UI: action buttons (POST with the session's CSRF token, two-click confirm for
// destructive ones), the live log (EventSource), a live instance view, and the workflow filter.
(function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || '';
  const toast = (msg, bad) => {
    let t = document.getElementById('toast');
    t.textContent = msg; t.className = 'toast' + (bad ? ' bad' : ''); t.style.display = 'block';
    clearTimeout(t._h); t._h = setTimeout(() => { t.style.display = 'none'; }, 4000);
  };
  async function post(url, body) {
    const r = await fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: body ? JSON.stringify(body) : '{}'
    });
    let data = {};
    try { data = await r.json(); } catch (e) {}
    if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
    return data;
  }
  document.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-post]');
    if (!b) return;
    ev.preventDefault();
    if (b.dataset.confirm && !b.classList.contains('confirm')) {
      b._label = b.textContent; b.textContent = b.dataset.confirm; b.classList.add('confirm');
      setTimeout(() => { if (b.classList.contains('confirm')) { b.classList.remove('confirm'); b.textContent = b._label; } }, 4000);
      return;
    }
    b.disabled = true;
    try {
      const data = await post(b.dataset.post, b.dataset.body ? JSON.parse(b.dataset.body) : null);
      toast(data.message || b.dataset.done || 'done');
      if (data.instance_id && b.dataset.go) { location.href = '/ui/instances/' + data.instance_id; return; }
      setTimeout(() => location.reload(), 700);
    } catch (e) {
      toast(e.message, true); b.disabled = false;
      if (b._label) { b.classList.remove('confirm'); b.textContent = b._label; }
    }
  });
  // the workflow page's backfill form: a dry run renders its plan in place, a start reloads
  document.addEventListener('submit', async (ev) => {
    const form = ev.target.closest('form[data-backfill]');
    if (!form) return;
    ev.preventDefault();
    const f = new FormData(form);
    const dry = !!(ev.submitter && ev.submitter.value);
    const body = { from: f.get('from'), to: f.get('to'), parallel: Number(f.get('parallel') || 1),
      reprocess: f.get('reprocess'), reverse: f.get('reverse') === 'on', blood: f.get('blood') === 'on', dry_run: dry };
    if (String(f.get('priority') || '').trim() !== '') body.priority = Number(f.get('priority'));
    const out = document.getElementById('backfill-plan');
    try {
      const plan = await post(form.dataset.backfill, body);
      if (!dry) { toast('backfill ' + plan.id + ': ' + plan.runs + ' slot(s) to run'); setTimeout(() => location.reload(), 700); return; }
      out.textContent = '';
      const p = document.createElement('div'); p.className = 'small muted';
      p.textContent = plan.runs + ' slot(s) would run, ' + plan.skips + ' skipped (' + plan.timezone + ')';
      out.appendChild(p);
      const t = document.createElement('table'); t.className = 'plan';
      plan.slots.forEach(s => {
        const r = t.insertRow();
        r.insertCell().textContent = s.local;
        const a = r.insertCell(); const b = document.createElement('span');
        b.className = 'badge st-' + (s.action === 'run' ? 'pending' : 'skipped'); b.textContent = s.action; a.appendChild(b);
        r.insertCell().textContent = s.reason || '';
      });
      out.appendChild(t);
    } catch (e) { toast(e.message, true); }
  });
  document.addEventListener('submit', async (ev) => {
    const form = ev.target.closest('form[data-post]');
    if (!form) return;
    ev.preventDefault();
    const params = {};
    new FormData(form).forEach((v, k) => { if (String(v).trim() !== '') params[k] = String(v); });
    try {
      const data = await post(form.dataset.post, { params });
      location.href = '/ui/instances/' + data.instance_id;
    } catch (e) { toast(e.message, true); }
  });
  const refresh = document.querySelector('[data-refresh]');
  if (refresh) setTimeout(() => location.reload(), Number(refresh.dataset.refresh) * 1000);
  const f = document.getElementById('wf-filter');
  if (f) f.addEventListener('input', () => {
    const q = f.value.toLowerCase();
    document.querySelectorAll('tr[data-wf]').forEach(r => { r.style.display = r.dataset.wf.includes(q) ? '' : 'none'; });
  });
  // a log line: its time (the viewer's zone; UTC on hover), node, attempt, text
  function logLine(l) {
    const d = document.createElement('span'); d.className = 'ln ' + l.stream;
    const ts = document.createElement('span'); ts.className = 'ts';
    const at = new Date(l.logged_at);
    ts.textContent = at.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(at.getMilliseconds()).padStart(3, '0') + ' ';
    ts.title = l.logged_at;
    const tag = document.createElement('span'); tag.className = 'tag'; tag.textContent = '[' + l.node + '#' + l.attempt + '] ';
    d.appendChild(ts); d.appendChild(tag); d.appendChild(document.createTextNode(l.line));
    return d;
  }
  // absolute times in the viewer's zone: <time class="local"> shows it, [data-ts] on hover
  const local = (iso) => new Date(iso).toLocaleString(undefined, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZoneName: 'short' });
  document.querySelectorAll('time.local').forEach(t => { t.title = t.textContent; t.textContent = local(t.getAttribute('datetime')); });
  document.querySelectorAll('[data-ts]').forEach(t => { t.title = local(t.dataset.ts) + ' (' + t.title + ')'; });
  // filter forms send only the filters that are set
  document.querySelectorAll('form.filters').forEach(f => f.addEventListener('submit', () => {
    f.querySelectorAll('input, select').forEach(i => { if (!i.value) i.disabled = true; });
  }));
  const search = document.getElementById('log-search');
  if (search) search.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = search.q.value.trim();
    const found = document.getElementById('log-found'), out = document.getElementById('log-results');
    const live = document.getElementById('log');
    if (!q) { found.style.display = out.style.display = 'none'; live.style.display = ''; return; }
    try {
      const r = await fetch(search.dataset.url + '?limit=5000&q=' + encodeURIComponent(q), { credentials: 'same-origin' });
      const d = await r.json();
      if (!r.ok) throw new Error((d.error && d.error.message) || r.statusText);
      out.textContent = '';
      d.lines.forEach(l => out.appendChild(logLine(l)));
      found.textContent = d.lines.length + (d.lines.length === 5000 ? '+' : '') + ' line(s) containing “' + q + '” — clear the search to see the whole output';
      found.style.display = ''; out.style.display = ''; live.style.display = 'none';
    } catch (e) { toast(e.message, true); }
  });
  const log = document.getElementById('log');
  if (log && log.dataset.follow) {
    const es = new EventSource(log.dataset.follow);
    const live = document.getElementById('live');
    let n = 0;
    es.addEventListener('line', (m) => {
      const l = JSON.parse(m.data);
      if (n++ === 0) log.textContent = '';
      const d = logLine(l);
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      log.appendChild(d);
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener('end', () => {
      es.close(); if (live) live.style.display = 'none';
      if (n === 0) log.textContent = 'no output';
      const d = document.createElement('span'); d.className = 'ln end'; d.textContent = '— end of output —'; log.appendChild(d);
    });
    es.addEventListener('error', () => { if (es.readyState === 2 && live) live.style.display = 'none'; });
  }
  const inst = document.querySelector('[data-instance-live]');
  if (inst) {
    const url = '/api/v1/instances/' + inst.dataset.instanceLive;
    const tick = async () => {
      try {
        const r = await fetch(url, { credentials: 'same-origin' });
        if (!r.ok) return;
        const d = await r.json();
        let changed = false;
        d.tasks.forEach(t => {
          const n = document.querySelector('.dag .n[data-node="' + CSS.escape(t.node) + '"]');
          if (n) n.setAttribute('class', 'n st-' + t.status);
          const row = document.querySelector('tr[data-task="' + t.id + '"]');
          if (row && row.dataset.status !== t.status) changed = true;
        });
        if (changed || d.instance.status !== inst.dataset.status) { location.reload(); return; }
      } catch (e) {}
      setTimeout(tick, 1500);
    };
    setTimeout(tick, 1500);
  }
})();
