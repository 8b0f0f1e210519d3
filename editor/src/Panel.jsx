// The side panel: the selected node's attributes and children, each with its own input, or the
// workflow's attributes, run-time parameters and coordinator when nothing is selected.
import { useEffect, useState } from 'react';
import Code from './Code.jsx';
import { get } from './api.js';
import {
  attr, withAttr, child, withChild, textOf, withText, elements, el, edgesOf, kindOf, isEl,
} from './model.js';

function Field({ label, hint, children }) {
  return (
    <label className="field">
      <span className="lbl">{label}{hint ? <em>{hint}</em> : null}</span>
      {children}
    </label>
  );
}

function Text({ value, onChange, placeholder, testid, type = 'text' }) {
  return (
    <input type={type} value={value ?? ''} placeholder={placeholder} data-testid={testid}
      onChange={(ev) => onChange(ev.target.value)} />
  );
}

function Attr({ e, k, set, label, hint, placeholder, type, testid }) {
  return (
    <Field label={label || k} hint={hint}>
      <Text type={type} value={attr(e, k)} placeholder={placeholder} testid={testid || `attr-${k}`}
        onChange={(v) => set(withAttr(e, k, v))} />
    </Field>
  );
}

function Check({ e, k, set, label, dflt = false, testid }) {
  const v = attr(e, k);
  const on = v === undefined ? dflt : v === 'true';
  return (
    <label className="check">
      <input type="checkbox" checked={on} data-testid={testid || `attr-${k}`}
        onChange={(ev) => set(withAttr(e, k, ev.target.checked === dflt ? undefined : String(ev.target.checked)))} />
      {label || k}
    </label>
  );
}

function Select({ value, options, onChange, testid, empty = '—' }) {
  const known = options.some((o) => o.value === value);
  return (
    <select value={value ?? ''} data-testid={testid} onChange={(ev) => onChange(ev.target.value)}>
      <option value="">{empty}</option>
      {value && !known ? <option value={value}>{value} (unknown)</option> : null}
      {options.map((o) => <option key={o.value} value={o.value}>{o.label || o.value}</option>)}
    </select>
  );
}

function LinkAttr({ e, k, set, links, label, testid }) {
  return (
    <Field label={label || k}>
      <Select value={attr(e, k)} testid={testid || `attr-${k}`}
        options={links.map((l) => ({ value: l.name, label: `${l.name} (${l.kind || l.type || ''})` }))}
        onChange={(v) => set(withAttr(e, k, v))} />
    </Field>
  );
}

// A child element's text with a code editor (created when first typed into).
function ChildCode({ e, name, set, lang, label, testid, lines }) {
  const c = child(e, name);
  return (
    <Field label={label || `<${name}>`}>
      <Code lang={lang} value={textOf(c)} testid={testid || `code-${name}`} minLines={lines}
        onChange={(t) => set(withChild(e, name, t === '' && !c ? null : withText(c || el(name), t)))} />
    </Field>
  );
}

function ChildText({ e, name, set, label, placeholder, testid }) {
  const c = child(e, name);
  return (
    <Field label={label || `<${name}>`}>
      <Text value={textOf(c)} placeholder={placeholder} testid={testid || `text-${name}`}
        onChange={(t) => set(withChild(e, name, t === '' ? null : withText(c || el(name), t)))} />
    </Field>
  );
}

// One transition select: where an edge goes.
function Target({ label, value, names, onChange, testid, self }) {
  return (
    <Field label={label}>
      <Select value={value} testid={testid} options={names.filter((n) => n !== self).map((n) => ({ value: n }))}
        onChange={onChange} empty="— none —" />
    </Field>
  );
}

// `<source>`, `<min>` or `<max>` of a data monitor: a type, a link for SQL, and a body.
function DataSource({ e, set, links, optional }) {
  if (!e) return null;
  const type = (attr(e, 'type') || 'SQL').toUpperCase();
  return (
    <div className="esub">
      <div className="row">
        <Field label={`<${e.name}> type`}>
          <Select value={type} testid={`${e.name}-type`} empty={optional ? '—' : 'SQL'}
            options={['SQL', 'COMMAND', 'NUM'].map((v) => ({ value: v }))}
            onChange={(v) => set(withAttr(e, 'type', v || 'SQL'))} />
        </Field>
        {type === 'SQL' ? <LinkAttr e={e} k="db-link" set={set} links={links} testid={`${e.name}-db-link`} /> : null}
      </div>
      <Code lang={type === 'SQL' ? 'sql' : 'shell'} value={textOf(e)} testid={`code-${e.name}`} minLines={2}
        onChange={(t) => set(withText(e, t))} />
    </div>
  );
}

function ActionKindFields({ k, e, set, dbLinks, fileLinks, workflows }) {
  switch (e.name) {
    case 'script':
      return (
        <>
          <ChildCode e={e} name="code" set={set} label="Script (shebang picks the interpreter)" lines={8} />
          <ChildText e={e} name="param-line" set={set} label="Arguments <param-line>" />
          <Field label="Attachments <attach-list>" hint="one path a line, beside the workflow file">
            <textarea data-testid="attach-list"
              value={elements(child(e, 'attach-list') || el('x')).map((f) => textOf(f)).join('\n')}
              onChange={(ev) => {
                const files = ev.target.value.split('\n').filter((l) => l.trim() !== '');
                set(withChild(e, 'attach-list', files.length ? el('attach-list', [], files.map((f) => el('file', [], [{ text: f, cdata: false }]))) : null));
              }} />
          </Field>
        </>
      );
    case 'shell':
      return <ChildCode e={e} name="command" set={set} label="Command (bash -c)" lines={5} />;
    case 'file-executor':
      return <ChildCode e={e} name="command" set={set} label="Script file and arguments" lines={2} />;
    case 'sql':
      return (
        <>
          <LinkAttr e={e} k="db-link" set={set} links={dbLinks} label="Database link" />
          <Field label="SQL" hint="statements run in one transaction">
            <Code lang="sql" value={textOf(e)} testid="code-sql" minLines={6} onChange={(t) => set(withText(e, t))} />
          </Field>
        </>
      );
    case 'file-monitor':
    case 'file-watcher': {
      const f = child(e, 'file') || el('file');
      const setF = (n) => set(withChild(e, 'file', n));
      return (
        <>
          <LinkAttr e={f} k="file-link" set={setF} links={fileLinks} label="File link" />
          <Field label="Path pattern">
            <Text value={textOf(f)} testid="file-pattern" placeholder="/data/in/orders_*.csv" onChange={(t) => setF(withText(f, t))} />
          </Field>
          <div className="row">
            <Attr e={f} k="min-num" set={setF} label="At least N files" type="number" />
            <Attr e={f} k="min-each-size" set={setF} label="Each at least" placeholder="0B, 10K, 2MB" />
          </div>
          <ChildText e={e} name="warn-msg" set={set} label="Warning message" />
        </>
      );
    }
    case 'data-monitor': {
      const part = (n) => child(e, n);
      const setPart = (n) => (v) => set(withChild(e, n, v));
      const toggle = (n) => set(withChild(e, n, part(n) ? null : el(n, [['type', 'NUM']], [{ text: '0', cdata: false }])));
      return (
        <>
          <DataSource e={part('source') || el('source', [['type', 'SQL']])} set={setPart('source')} links={dbLinks} />
          {['min', 'max'].map((n) => (
            <div key={n}>
              <label className="check"><input type="checkbox" checked={!!part(n)} data-testid={`toggle-${n}`} onChange={() => toggle(n)} />{n === 'min' ? 'Lower bound <min>' : 'Upper bound <max>'}</label>
              <DataSource e={part(n)} set={setPart(n)} links={dbLinks} optional />
            </div>
          ))}
          <ChildText e={e} name="warn-msg" set={set} label="Warning message" />
          <div className="row">
            <Attr e={e} k="category" set={set} />
            <Attr e={e} k="source-name" set={set} />
          </div>
          <Check e={e} k="is-exceed-error" set={set} label="A value out of bounds fails the action" dflt />
        </>
      );
    }
    case 'transfer': {
      const script = child(e, 'script');
      if (script) {
        return (
          <>
            <p className="muted">Runs a script (sqoop and the like) instead of copying rows.</p>
            <ChildCode e={script} name="code" set={(s) => set(withChild(e, 'script', s))} label="Script" lines={6} />
          </>
        );
      }
      const src = child(e, 'source') || el('source', [['type', 'DB']]);
      const tgt = child(e, 'target') || el('target', [['type', 'DB']]);
      const setSrc = (v) => set(withChild(e, 'source', v));
      const setTgt = (v) => set(withChild(e, 'target', v));
      const st = (attr(src, 'type') || 'DB').toUpperCase();
      const tt = (attr(tgt, 'type') || 'DB').toUpperCase();
      return (
        <>
          <h4>Source</h4>
          <Field label="type"><Select value={st} testid="source-type" options={[{ value: 'DB' }, { value: 'FILE' }]} onChange={(v) => setSrc(withAttr(src, 'type', v || 'DB'))} /></Field>
          {st === 'DB' ? (
            <>
              <LinkAttr e={src} k="db-link" set={setSrc} links={dbLinks} testid="source-db-link" />
              <Field label="Table or SELECT"><Code lang="sql" value={textOf(src)} testid="code-source" minLines={3} onChange={(t) => setSrc(withText(src, t))} /></Field>
            </>
          ) : (
            <>
              <LinkAttr e={src} k="file-link" set={setSrc} links={fileLinks} testid="source-file-link" />
              <Field label="Path"><Text value={textOf(src) || attr(src, 'path')} testid="source-path" onChange={(t) => setSrc(withText(src, t))} /></Field>
              <Attr e={src} k="delimited" set={setSrc} label="Delimiter" placeholder="tab" />
            </>
          )}
          <h4>Target</h4>
          <Field label="type"><Select value={tt} testid="target-type" options={[{ value: 'DB' }, { value: 'FILE' }]} onChange={(v) => setTgt(withAttr(tgt, 'type', v || 'DB'))} /></Field>
          {tt === 'DB' ? (
            <>
              <LinkAttr e={tgt} k="db-link" set={setTgt} links={dbLinks} testid="target-db-link" />
              <Attr e={tgt} k="table" set={setTgt} />
              <div className="row">
                <Attr e={tgt} k="task-num" set={setTgt} label="Parallel writers" type="number" />
                <Check e={tgt} k="is-pre-truncate" set={setTgt} label="Truncate first" />
              </div>
              <ChildCode e={tgt} name="pre" set={setTgt} lang="sql" label="SQL before <pre>" lines={2} />
              <ChildCode e={tgt} name="after" set={setTgt} lang="sql" label="SQL after <after>" lines={2} />
            </>
          ) : (
            <>
              <Attr e={tgt} k="path" set={setTgt} />
              <Attr e={tgt} k="delimited" set={setTgt} label="Delimiter" placeholder="tab" />
            </>
          )}
        </>
      );
    }
    case 'email':
      return (
        <>
          <Attr e={e} k="subject" set={set} />
          <Field label="HTML body" hint="sent to the workflow's mail receivers">
            <Code lang="html" value={textOf(e)} testid="code-email" minLines={5} onChange={(t) => set(withText(e, t))} />
          </Field>
        </>
      );
    case 'metadata': {
      const cols = elements(e).filter((c) => c.name === 'column-comment');
      return (
        <>
          <LinkAttr e={e} k="db-link" set={set} links={dbLinks} label="Database link" />
          <div className="row">
            <Attr e={e} k="table" set={set} />
            <Attr e={e} k="from" set={set} label="Lineage from" />
          </div>
          <ChildText e={e} name="table-comment" set={set} label="Table comment" />
          <Field label="Column comments" hint="column: comment, one a line">
            <textarea data-testid="column-comments" value={cols.map((c) => `${attr(c, 'name') || ''}: ${textOf(c)}`).join('\n')}
              onChange={(ev) => {
                const kept = e.children.filter((c) => !(isEl(c) && c.name === 'column-comment'));
                const lines = ev.target.value.split('\n').filter((l) => l.includes(':'));
                const made = lines.map((l) => {
                  const i = l.indexOf(':');
                  return el('column-comment', [['name', l.slice(0, i).trim()]], [{ text: l.slice(i + 1).trim(), cdata: false }]);
                });
                set({ ...e, children: [...kept, ...made] });
              }} />
          </Field>
        </>
      );
    }
    case 'sub-workflow':
      return (
        <>
          <Field label="Workflow to run">
            <Select value={attr(e, 'name')} testid="sub-workflow-name" options={workflows.map((w) => ({ value: w.name, label: `${w.name} (${w.dir})` }))}
              onChange={(v) => set(withAttr(e, 'name', v))} />
          </Field>
          <Check e={e} k="wait" set={set} label="Wait for it and take its result" dflt />
        </>
      );
    default:
      return <p className="muted">No fields for &lt;{k}&gt;: edit it in the XML file.</p>;
  }
}

export function NodePanel({ node, setNode, rename, names, dbLinks, fileLinks, workflows, onDelete }) {
  const kind = kindOf(node);
  const name = attr(node, 'name') || '';
  const [draft, setDraft] = useState(name);
  useEffect(() => setDraft(name), [name]);
  const commitName = () => { if (draft && draft !== name) rename(draft); else setDraft(name); };
  const edges = edgesOf(node);
  const to = (h) => (edges.find((x) => x.handle === h) || {}).to;
  const kindEl = node.name === 'action' ? elements(node).find((c) => c.name !== 'ok' && c.name !== 'error') : null;
  const setKindEl = (v) => setNode({ ...node, children: node.children.map((c) => (c === kindEl ? v : c)) });
  const setTo = (which) => (v) => {
    if (node.name === 'action') {
      const existing = child(node, which);
      if (!v) return setNode(withChild(node, which, null));
      if (existing) return setNode(withChild(node, which, withAttr(existing, 'to', v)));
      const kids = [...node.children];
      const errAt = kids.findIndex((c) => isEl(c) && c.name === 'error');
      if (which === 'ok' && errAt >= 0) kids.splice(errAt, 0, el('ok', [['to', v]])); else kids.push(el(which, [['to', v]]));
      return setNode({ ...node, children: kids });
    }
    return setNode(withAttr(node, 'to', v));
  };
  return (
    <div className="panel-body" data-testid="node-panel">
      <div className="panel-head">
        <span className={`kind-dot k-${kind}`} />
        <div><div className="ptitle">{name}</div><div className="muted">{node.name === 'action' ? `${kind} action` : kind}</div></div>
        <button type="button" className="btn danger small" data-testid="delete-node" onClick={onDelete}>Delete</button>
      </div>
      <Field label="Name">
        <input value={draft} data-testid="node-name" onChange={(ev) => setDraft(ev.target.value)} onBlur={commitName}
          onKeyDown={(ev) => { if (ev.key === 'Enter') ev.target.blur(); }} />
      </Field>
      {node.name === 'action' ? (
        <>
          <Attr e={node} k="desc" set={setNode} label="Description" />
          <div className="row">
            <Attr e={node} k="retry-times" set={setNode} label="Retries" type="number" placeholder="0" />
            <Attr e={node} k="interval" set={setNode} label="Interval (s)" type="number" placeholder="0" />
            <Attr e={node} k="timeout" set={setNode} label="Timeout (s)" type="number" placeholder="none" />
          </div>
          <div className="row">
            <Attr e={node} k="host" set={setNode} label="Host or label" placeholder="any worker" />
            <Check e={node} k="is-ignore" set={setNode} label="Skip (mark succeeded)" />
          </div>
          <h4>{kind}</h4>
          {kindEl ? <ActionKindFields k={kind} e={kindEl} set={setKindEl} dbLinks={dbLinks} fileLinks={fileLinks} workflows={workflows} /> : <p className="muted">This action has no kind element.</p>}
          <h4>Transitions</h4>
          <div className="row">
            <Target label="On success → ok" value={to('ok')} names={names} self={name} testid="edge-ok" onChange={setTo('ok')} />
            <Target label="On failure → error" value={to('error')} names={names} self={name} testid="edge-error" onChange={setTo('error')} />
          </div>
        </>
      ) : null}
      {node.name === 'start' || node.name === 'join' ? (
        <Target label="Next → to" value={attr(node, 'to')} names={names} self={name} testid="edge-next" onChange={setTo('next')} />
      ) : null}
      {node.name === 'kill' ? <ChildText e={node} name="message" set={setNode} label="Message (recorded and sent in the alert)" /> : null}
      {node.name === 'fork' ? (
        <Field label="Paths" hint="every path starts at once">
          <div className="paths">
            {elements(node).filter((p) => p.name === 'path').map((p, i) => (
              <div className="pathrow" key={i}>
                <Select value={attr(p, 'to')} testid={`fork-path-${i}`} options={names.filter((n) => n !== name).map((n) => ({ value: n }))}
                  onChange={(v) => setNode({ ...node, children: node.children.map((c) => (c === p ? withAttr(p, 'to', v) : c)) })} />
                <button type="button" className="btn small" onClick={() => setNode({ ...node, children: node.children.filter((c) => c !== p) })}>✕</button>
              </div>
            ))}
            <Select value="" testid="fork-add-path" empty="+ add a path to…" options={names.filter((n) => n !== name).map((n) => ({ value: n }))}
              onChange={(v) => v && setNode({ ...node, children: [...node.children, el('path', [['to', v]])] })} />
          </div>
        </Field>
      ) : null}
    </div>
  );
}

const MAIL_LEVELS = [['W_SUCCESSED', 'succeeded'], ['W_FAILED', 'failed'], ['W_KILLED', 'killed']];

function CronPreview({ cron, timezone }) {
  const [p, setP] = useState(null);
  useEffect(() => {
    if (!cron) { setP(null); return undefined; }
    const h = setTimeout(async () => {
      try {
        const q = new URLSearchParams({ expr: cron });
        if (timezone) q.set('timezone', timezone);
        setP(await get(`/ui/editor/api/cron?${q}`));
      } catch (e) { setP({ error: e.message }); }
    }, 250);
    return () => clearTimeout(h);
  }, [cron, timezone]);
  if (!p) return null;
  if (p.error) return <div className="cron bad" data-testid="cron-preview">{p.error}</div>;
  return (
    <div className="cron" data-testid="cron-preview">
      <b>{p.summary}</b> <span className="muted">({p.timezone})</span>
      {p.warning ? <div className="warn">{p.warning}</div> : null}
      <ul>{p.next.map((t) => <li key={t}>{t}</li>)}</ul>
    </div>
  );
}

export function WorkflowPanel({ doc, setRoot, setPart, workflows, scope }) {
  const root = doc.root;
  const coord = elements(root).find((c) => c.name === 'coordinator');
  const params = elements(root).find((c) => c.name === 'param-list');
  const dl = coord && child(coord, 'depend-list');
  const setCoord = (c) => setPart('coordinator', c);
  const setDl = (d) => setCoord(withChild(coord, 'depend-list', d));
  const levels = (attr(root, 'mail-level') || 'W_FAILED').split(',').map((s) => s.trim());
  const deps = dl ? elements(dl).filter((w) => w.name === 'workflow').map((w) => attr(w, 'name')) : [];
  const me = attr(root, 'name');
  const paramRows = (list, setList, testid) => (
    <div className="eparams" data-testid={testid}>
      {(list ? elements(list).filter((p) => p.name === 'param') : []).map((p, i) => (
        <div className="pathrow" key={i}>
          <input value={attr(p, 'name') || ''} placeholder="name" onChange={(ev) => setList({ ...list, children: list.children.map((c) => (c === p ? withAttr(p, 'name', ev.target.value) : c)) })} />
          <input value={attr(p, 'value') || ''} placeholder="${time.today|yyyy-MM-dd|-1 day}" onChange={(ev) => setList({ ...list, children: list.children.map((c) => (c === p ? withAttr(p, 'value', ev.target.value) : c)) })} />
          <button type="button" className="btn small" onClick={() => { const kids = list.children.filter((c) => c !== p); setList(kids.length ? { ...list, children: kids } : null); }}>✕</button>
        </div>
      ))}
      <button type="button" className="btn small" data-testid={`${testid}-add`} onClick={() => setList({ ...(list || el('param-list')), children: [...((list && list.children) || []), el('param', [['name', ''], ['value', '']])] })}>+ parameter</button>
    </div>
  );
  return (
    <div className="panel-body" data-testid="workflow-panel">
      <div className="panel-head"><span className="kind-dot k-workflow" /><div><div className="ptitle">Workflow</div><div className="muted">select a node to edit it</div></div></div>
      <Attr e={root} k="name" set={setRoot} label="Name" testid="wf-name" />
      <Attr e={root} k="desc" set={setRoot} label="Description" testid="wf-desc" />
      <div className="row">
        <Attr e={root} k="dir" set={setRoot} label="Folder (dir)" hint={scope ? ` within ${scope}` : ''} placeholder="/dw/ods" testid="wf-dir" />
        <Attr e={root} k="creator" set={setRoot} label="Owner" testid="wf-creator" />
      </div>
      <div className="row">
        <Attr e={root} k="instance-limit" set={setRoot} label="Instances at once" type="number" placeholder="1" />
        <Attr e={root} k="mail-receivers" set={setRoot} label="Mail receivers" placeholder="a@x.com,b@x.com" />
      </div>
      <Field label="Mail when the run ends">
        <div className="checks">
          {MAIL_LEVELS.map(([v, label]) => (
            <label className="check" key={v}>
              <input type="checkbox" checked={levels.includes(v)} onChange={(ev) => {
                const next = MAIL_LEVELS.map(([x]) => x).filter((x) => (x === v ? ev.target.checked : levels.includes(x)));
                setRoot(withAttr(root, 'mail-level', next.join(',') === 'W_FAILED' ? undefined : next.join(',') || 'W_FAILED'));
              }} />{label}
            </label>
          ))}
        </div>
      </Field>
      <h4>Run-time parameters <code>&lt;param-list&gt;</code></h4>
      {paramRows(params, (l) => setPart('param-list', l), 'wf-params')}
      <h4>Coordinator</h4>
      {!coord ? (
        <button type="button" className="btn" data-testid="add-coordinator" onClick={() => setCoord(el('coordinator', [['is-enabled', 'true']], [el('depend-list', [['cron', '0 1 * * *']])]))}>+ Schedule it</button>
      ) : (
        <>
          <div className="row">
            <Check e={coord} k="is-enabled" set={setCoord} label="Enabled" dflt testid="coord-enabled" />
            <button type="button" className="btn small danger" onClick={() => setCoord(null)}>Remove schedule</button>
          </div>
          <div className="row">
            <Field label="Cron" hint="min hour day month weekday">
              <Text value={dl ? attr(dl, 'cron') : ''} testid="coord-cron" placeholder="30 1 * * *"
                onChange={(v) => setDl(withAttr(dl || el('depend-list'), 'cron', v))} />
            </Field>
            <Attr e={coord} k="timezone" set={setCoord} label="Time zone" placeholder="server's zone" testid="coord-timezone" />
          </div>
          <CronPreview cron={dl && attr(dl, 'cron')} timezone={attr(coord, 'timezone')} />
          <Field label="After these workflows succeed">
            <div className="deps" data-testid="coord-deps">
              {deps.map((d) => (
                <span className="echip" key={d}>{d}<button type="button" onClick={() => setDl({ ...dl, children: dl.children.filter((c) => !(isEl(c) && c.name === 'workflow' && attr(c, 'name') === d)) })}>✕</button></span>
              ))}
              <Select value="" testid="coord-add-dep" empty="+ depends on…" options={workflows.filter((w) => w.name !== me && !deps.includes(w.name)).map((w) => ({ value: w.name, label: `${w.name} (${w.dir})` }))}
                onChange={(v) => v && setDl({ ...(dl || el('depend-list')), children: [...((dl && dl.children) || []), el('workflow', [['name', v]])] })} />
            </div>
          </Field>
          <div className="row">
            <Attr e={coord} k="start-time" set={setCoord} label="From" placeholder="2024-01-01 00:00:00" />
            <Attr e={coord} k="end-time" set={setCoord} label="Until" placeholder="2099-12-31 00:00:00" />
          </div>
          <h4>Coordinator parameters</h4>
          {paramRows(child(coord, 'param-list'), (l) => setCoord(withChild(coord, 'param-list', l)), 'coord-params')}
        </>
      )}
    </div>
  );
}
