// The akkaflow visual workflow editor: a React Flow canvas over the definition file's own tree,
// a side panel per node kind, live validation by the server's validator, and save through the
// definition upload. Mounted on #editor-root by /ui/editor and /ui/editor/{name}.
import { createRoot } from 'react-dom/client';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  ReactFlow, ReactFlowProvider, Background, Controls, MiniMap, Handle, Position, MarkerType,
  applyNodeChanges, useReactFlow,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './editor.css';
import { get, post } from './api.js';
import { NodePanel, WorkflowPanel } from './Panel.jsx';
import {
  ACTION_KINDS, CONTROL_KINDS, attr, connect, deleteNode, disconnect, edgesOf, findNode, kindOf,
  newDocument, newNode, nodeElements, renameNode, uniqueName, updateNode, updateRoot, withRootPart,
} from './model.js';

// Node sizes match the read-only DAG view's drawing, so a layout from the server fits as is.
const ACTION_W = 150;
const ACTION_H = 46;
const CONTROL = 34;
const isControl = (k) => CONTROL_KINDS.includes(k);
const size = (k) => (isControl(k) ? [CONTROL, CONTROL] : [ACTION_W, ACTION_H]);

// Glyphs every system font has (DejaVu included), so no box ever shows instead of an icon.
const ICON = {
  start: '▶', end: '■', kill: '✕', fork: '⋔', join: '⋈', script: '{}', shell: '$', 'file-executor': '⚙',
  sql: '⛁', 'file-monitor': '◎', 'data-monitor': '≥', transfer: '⇄', email: '✉', metadata: '✎', 'sub-workflow': '↳',
};

function FlowNode({ data, selected }) {
  const k = data.kind;
  const bad = data.errors > 0;
  const cls = `fn ${isControl(k) ? `ctl ctl-${k}` : 'act'} k-${k}${selected ? ' sel' : ''}${bad ? ' bad' : ''}${data.warnings ? ' warned' : ''}`;
  return (
    <div className={cls} data-node={data.name} data-testid={`node-${data.name}`} title={data.title}>
      {k !== 'start' ? <Handle type="target" position={Position.Left} /> : null}
      {isControl(k) ? (
        <>
          <div className="shape"><span>{ICON[k]}</span></div>
          <div className="cap">{data.name}</div>
        </>
      ) : (
        <>
          <div className="eico">{ICON[k] || '•'}</div>
          <div className="txt"><div className="nm">{data.name}</div><div className="kd">{k}</div></div>
        </>
      )}
      {bad ? <div className="ebadge" data-testid={`node-errors-${data.name}`}>{data.errors}</div> : null}
      {k === 'end' || k === 'kill' ? null : k === 'start' || k === 'join' || k === 'fork' ? (
        <Handle type="source" position={Position.Right} id="next" />
      ) : (
        <>
          <Handle type="source" position={Position.Right} id="ok" className="h-ok" />
          <Handle type="source" position={Position.Bottom} id="error" className="h-error" />
        </>
      )}
    </div>
  );
}

const nodeTypes = { akf: FlowNode };

function download(name, xml) {
  const url = URL.createObjectURL(new Blob([xml], { type: 'application/xml' }));
  const a = document.createElement('a');
  a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function Editor({ opened, scope }) {
  const flow = useReactFlow();
  const [doc, setDoc] = useState(opened.document);
  const [positions, setPositions] = useState(() => {
    const p = {};
    nodeElements(opened.document).forEach((e) => {
      const n = attr(e, 'name'); const c = opened.layout[n];
      if (c) { const [w, h] = size(kindOf(e)); p[n] = { x: c[0] - w / 2, y: c[1] - h / 2 }; }
    });
    return p;
  });
  const [selected, setSelected] = useState(null);
  const [check, setCheck] = useState({ valid: null, xml: opened.xml || '', findings: [] });
  const [checking, setChecking] = useState(false);
  const [tab, setTab] = useState('problems');
  const [showXml, setShowXml] = useState(false);
  const [saved, setSaved] = useState({ version: opened.version, name: opened.name, dirty: false });
  const [toast, setToast] = useState(null);
  const [links, setLinks] = useState({ db: [], file: [] });
  const [workflows, setWorkflows] = useState([]);
  const [rfNodes, setRfNodes] = useState([]);
  const seq = useRef(0);

  const change = useCallback((fn) => { setDoc((d) => fn(d)); setSaved((s) => ({ ...s, dirty: true })); }, []);
  const say = (msg, bad) => { setToast({ msg, bad }); setTimeout(() => setToast(null), 4500); };

  useEffect(() => {
    get('/api/v1/links/db').then((r) => setLinks((l) => ({ ...l, db: r.links }))).catch(() => {});
    get('/api/v1/links/file').then((r) => setLinks((l) => ({ ...l, file: r.links }))).catch(() => {});
    get('/api/v1/workflows').then((r) => setWorkflows(r.workflows)).catch(() => {});
  }, []);

  // live validation: the server prints the XML and runs the upload's validator on it
  useEffect(() => {
    const mine = ++seq.current;
    setChecking(true);
    const h = setTimeout(async () => {
      try {
        const r = await post('/ui/editor/api/check', { document: doc });
        if (mine === seq.current) setCheck(r);
      } catch (e) {
        if (mine === seq.current) setCheck({ valid: false, xml: '', findings: [{ severity: 'error', line: 0, col: 0, message: e.message }] });
      } finally {
        if (mine === seq.current) setChecking(false);
      }
    }, 350);
    return () => clearTimeout(h);
  }, [doc]);

  const byNode = useMemo(() => {
    const m = {};
    check.findings.forEach((f) => {
      if (!f.node) return;
      m[f.node] = m[f.node] || { errors: 0, warnings: 0, msgs: [] };
      m[f.node][f.severity === 'error' ? 'errors' : 'warnings'] += 1;
      m[f.node].msgs.push(f.message);
    });
    return m;
  }, [check]);

  const nodes = nodeElements(doc);
  const names = nodes.map((e) => attr(e, 'name'));

  // React Flow keeps measured sizes on its nodes: rebuild them from the document, keeping those
  useEffect(() => {
    setRfNodes((prev) => {
      const old = Object.fromEntries(prev.map((n) => [n.id, n]));
      return nodeElements(doc).map((e, i) => {
        const name = attr(e, 'name');
        const k = kindOf(e);
        const f = byNode[name] || { errors: 0, warnings: 0, msgs: [] };
        return {
          ...(old[name] || {}),
          id: name,
          type: 'akf',
          position: positions[name] || { x: 40 + (i % 6) * 190, y: 40 + Math.floor(i / 6) * 90 },
          selected: selected === name,
          data: { name, kind: k, errors: f.errors, warnings: f.warnings, title: f.msgs.join('\n') },
        };
      });
    });
  }, [doc, positions, selected, byNode]);

  const rfEdges = useMemo(() => nodes.flatMap((e) => edgesOf(e).filter((x) => names.includes(x.to)).map((x) => ({
    id: `${attr(e, 'name')}|${x.handle}|${x.to}`,
    source: attr(e, 'name'),
    sourceHandle: x.handle,
    target: x.to,
    className: `e-${x.kind}`,
    label: x.kind === 'error' ? 'error' : undefined,
    markerEnd: { type: MarkerType.ArrowClosed, color: x.kind === 'error' ? '#f87171' : '#94a3b8' },
  }))), [doc]); // eslint-disable-line react-hooks/exhaustive-deps

  const onNodesChange = useCallback((changes) => {
    setRfNodes((ns) => applyNodeChanges(changes.filter((c) => c.type !== 'remove'), ns));
    const moved = changes.filter((c) => c.type === 'position' && c.position);
    if (moved.length) setPositions((p) => { const q = { ...p }; moved.forEach((c) => { q[c.id] = c.position; }); return q; });
    const sel = changes.filter((c) => c.type === 'select' && c.selected);
    if (sel.length) setSelected(sel[sel.length - 1].id);
  }, []);

  const onConnect = useCallback((c) => {
    if (c.source === c.target) return;
    change((d) => connect(d, c.source, c.sourceHandle, c.target));
  }, [change]);

  const onEdgesDelete = useCallback((es) => {
    change((d) => es.reduce((acc, e) => { const [s, h, t] = e.id.split('|'); return disconnect(acc, s, h, t); }, d));
  }, [change]);

  const removeNode = useCallback((name) => {
    change((d) => deleteNode(d, name));
    setSelected((s) => (s === name ? null : s));
  }, [change]);

  const onNodesDelete = useCallback((ns) => ns.forEach((n) => removeNode(n.id)), [removeNode]);

  const addNode = (kind, at) => {
    const base = isControl(kind) ? kind : kind.replace(/-/g, '_');
    const name = uniqueName(doc, base);
    let pos = at;
    if (!pos) {
      // to the right of everything, in the middle of the view's height
      const xs = Object.values(positions).map((p) => p.x);
      const vp = flow.getViewport();
      const midY = (-vp.y + (document.querySelector('.canvas')?.clientHeight || 400) / 2) / vp.zoom;
      pos = { x: (xs.length ? Math.max(...xs) : 0) + 200, y: midY - 23 };
    }
    setPositions((p) => ({ ...p, [name]: pos }));
    change((d) => {
      const kids = [...d.root.children];
      // a new node goes before the end/kill nodes, which the format usually keeps last
      const firstTail = kids.findIndex((c) => c.name === 'end' || c.name === 'kill');
      kids.splice(firstTail < 0 ? kids.length : firstTail, 0, newNode(kind, name));
      return { ...d, root: { ...d.root, children: kids } };
    });
    setSelected(name);
  };

  const onDrop = (ev) => {
    ev.preventDefault();
    const kind = ev.dataTransfer.getData('application/x-akkaflow-kind');
    if (!kind) return;
    const p = flow.screenToFlowPosition({ x: ev.clientX, y: ev.clientY });
    addNode(kind, { x: p.x - ACTION_W / 2, y: p.y - ACTION_H / 2 });
  };

  const relayout = async () => {
    try {
      const r = await post('/ui/editor/api/layout', { document: doc });
      const p = {};
      nodeElements(doc).forEach((e) => {
        const n = attr(e, 'name'); const c = r.layout[n];
        if (c) { const [w, h] = size(kindOf(e)); p[n] = { x: c[0] - w / 2, y: c[1] - h / 2 }; }
      });
      setPositions(p);
      setTimeout(() => flow.fitView({ padding: 0.15, duration: 200 }), 50);
    } catch (e) { say(e.message, true); }
  };

  const focusNode = (name) => {
    if (!name) { setSelected(null); return; }
    setSelected(name);
    const p = positions[name];
    if (p) flow.setCenter(p.x + 75, p.y + 23, { zoom: Math.max(flow.getZoom(), 1), duration: 250 });
  };

  const wfName = attr(doc.root, 'name') || '';
  const save = async () => {
    try {
      const r = await post('/ui/editor/api/save', { document: doc, base_version: saved.version ?? null, opened: saved.name || null });
      setSaved({ version: r.version, name: r.workflow, dirty: false });
      const what = r.report.added ? 'created' : r.report.updated ? 'saved' : 'unchanged';
      say(`${r.workflow}: ${what} (version ${r.version})`);
      if (window.location.pathname !== `/ui/editor/${encodeURIComponent(r.workflow)}`) {
        window.history.replaceState(null, '', `/ui/editor/${encodeURIComponent(r.workflow)}`);
      }
    } catch (e) { say(e.message, true); }
  };

  const sel = selected ? findNode(doc, selected) : null;
  const errors = check.findings.filter((f) => f.severity === 'error');
  const warnings = check.findings.filter((f) => f.severity !== 'error');
  const fromDir = opened.file_path && !opened.file_path.startsWith('upload/');

  return (
    <div className="akf-editor">
      <div className="ebar">
        <div className="title">
          <a href="/ui/workflows">Workflows</a> / <b data-testid="title">{wfName || 'unnamed'}</b>
          {saved.version ? <span className="ver">v{saved.version}</span> : <span className="ver new">new</span>}
          {saved.dirty ? <span className="dirty">unsaved changes</span> : null}
        </div>
        <span className="grow" />
        <span className={`status ${checking ? 'busy' : check.valid ? 'ok' : 'bad'}`} data-testid="validity">
          {checking ? 'checking…' : check.valid ? '✓ valid' : `${errors.length} error${errors.length === 1 ? '' : 's'}`}
        </span>
        <button type="button" className={`btn${selected ? '' : ' on'}`} onClick={() => setSelected(null)} data-testid="workflow-settings">⚙ Workflow</button>
        <button type="button" className="btn" onClick={relayout} data-testid="relayout">Tidy layout</button>
        <button type="button" className={`btn${showXml ? ' on' : ''}`} onClick={() => { setShowXml((v) => !v); setTimeout(() => flow.fitView({ padding: 0.15, duration: 200 }), 250); }} data-testid="xml-tab">XML</button>
        <button type="button" className="btn" onClick={() => download(`${wfName || 'workflow'}.xml`, check.xml)} disabled={!check.xml} data-testid="export">Export</button>
        <button type="button" className="btn primary" onClick={save} disabled={!check.valid || checking} data-testid="save">Save</button>
        {saved.name && !saved.dirty ? <a className="btn" href={`/ui/workflows/${encodeURIComponent(saved.name)}`} data-testid="open-workflow">Open ↗</a> : null}
      </div>
      {fromDir ? (
        <div className="note" data-testid="source-note">
          This workflow was synced from <code>{opened.file_path}</code>. The definitions directory stays the source of truth:
          the next <code>akkaflow sync</code> of it (or <code>standalone</code>'s rescan, when a file there changes) puts that file's version back.
          Use <b>Export</b> and put the file there to keep your change.
        </div>
      ) : null}
      <div className="work">
        <div className={`palette${showXml ? ' compact' : ''}`} data-testid="palette">
          <div className="ph">Control</div>
          {CONTROL_KINDS.map((k) => (
            <button type="button" key={k} className={`pal k-${k}`} draggable data-kind={k} data-testid={`add-${k}`}
              onDragStart={(ev) => { ev.dataTransfer.setData('application/x-akkaflow-kind', k); ev.dataTransfer.effectAllowed = 'move'; }}
              title={k} onClick={() => addNode(k)}><span className="pi">{ICON[k]}</span><span className="pl">{k}</span></button>
          ))}
          <div className="ph">Actions</div>
          {ACTION_KINDS.map((k) => (
            <button type="button" key={k} className={`pal k-${k}`} draggable data-kind={k} data-testid={`add-${k}`}
              onDragStart={(ev) => { ev.dataTransfer.setData('application/x-akkaflow-kind', k); ev.dataTransfer.effectAllowed = 'move'; }}
              title={k} onClick={() => addNode(k)}><span className="pi">{ICON[k]}</span><span className="pl">{k}</span></button>
          ))}
          <div className="ehint">Click or drag onto the canvas. Drag from a node's right dot (ok) or bottom dot (error) to connect; select and press Delete to remove.</div>
        </div>
        <div className="center">
          <div className="canvas" onDragOver={(ev) => { ev.preventDefault(); ev.dataTransfer.dropEffect = 'move'; }} onDrop={onDrop}>
            <ReactFlow
              nodes={rfNodes} edges={rfEdges} nodeTypes={nodeTypes}
              onNodesChange={onNodesChange} onConnect={onConnect} onEdgesDelete={onEdgesDelete} onNodesDelete={onNodesDelete}
              onPaneClick={() => setSelected(null)}
              fitView fitViewOptions={{ padding: 0.2, maxZoom: 1.2 }} minZoom={0.2} maxZoom={2}
              deleteKeyCode={['Delete', 'Backspace']} proOptions={{ hideAttribution: true }}
            >
              <Background gap={16} size={1} color="#e2e8f0" />
              <Controls showInteractive={false} />
              <MiniMap pannable zoomable nodeColor={(n) => (n.data.errors ? '#f87171' : '#a5b4fc')} />
            </ReactFlow>
          </div>
          <div className="bottom">
            <div className="tabs">
              <button type="button" className={tab === 'problems' ? 'on' : ''} onClick={() => setTab('problems')} data-testid="problems-tab">
                Problems {errors.length ? <span className="count bad">{errors.length}</span> : null}{warnings.length ? <span className="count warn">{warnings.length}</span> : null}
              </button>
            </div>
            <ul className="problems" data-testid="problems">
              {check.findings.length === 0 && !checking ? <li className="none">No problems: the workflow is valid.</li> : null}
              {check.findings.map((f, i) => (
                <li key={i} className={`p-${f.severity}`} data-testid="problem" data-node={f.node || ''}>
                  <button type="button" onClick={() => focusNode(f.node)}>
                    <span className="sev">{f.severity}</span>
                    <span className="where">{f.node ? f.node : f.element || 'file'}{f.line ? ` · line ${f.line}` : ''}</span>
                    <span className="msg">{f.message}</span>
                  </button>
                </li>
              ))}
            </ul>
          </div>
        </div>
        {showXml ? (
          <div className="xml" data-testid="xml">
            <div className="ph">Canonical XML <span className="muted">(what Save stores)</span></div>
            <pre>{check.xml.split('\n').map((l, i) => {
              const f = check.findings.find((x) => x.line === i + 1 && x.severity === 'error');
              return <div key={i} className={f ? 'xl bad' : 'xl'} title={f ? f.message : undefined}><span className="ln">{i + 1}</span>{l}</div>;
            })}</pre>
          </div>
        ) : null}
        <div className="eside">
          {sel ? (
            <NodePanel
              key={selected}
              node={sel}
              names={names}
              dbLinks={links.db}
              fileLinks={links.file}
              workflows={workflows}
              setNode={(n) => change((d) => updateNode(d, selected, () => n))}
              rename={(to) => {
                if (names.includes(to)) { say(`a node named ${to} exists already`, true); return; }
                change((d) => renameNode(d, selected, to));
                setPositions((p) => { const q = { ...p, [to]: p[selected] }; delete q[selected]; return q; });
                setSelected(to);
              }}
              onDelete={() => removeNode(selected)}
            />
          ) : (
            <WorkflowPanel
              doc={doc}
              scope={scope}
              workflows={workflows}
              setRoot={(r) => change((d) => updateRoot(d, () => r))}
              setPart={(name, part) => change((d) => withRootPart(d, name, part))}
            />
          )}
        </div>
      </div>
      {toast ? <div className={`etoast${toast.bad ? ' bad' : ''}`} data-testid="toast">{toast.msg}</div> : null}
    </div>
  );
}

function App() {
  const host = document.getElementById('editor-root');
  const name = host.dataset.workflow;
  const scope = host.dataset.scope;
  const [opened, setOpened] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!name) {
      setOpened({ document: newDocument(scope || '/tmp'), layout: {}, version: null, name: null, xml: '' });
      return;
    }
    get(`/ui/editor/api/workflows/${encodeURIComponent(name)}`)
      .then((r) => setOpened({ ...r, name }))
      .catch((e) => setError(e.message));
  }, [name, scope]);
  if (error) return <div className="empty">Cannot open {name}: {error}</div>;
  if (!opened) return <div className="empty">Loading…</div>;
  if (!name) {
    // a new workflow: place start and end where the DAG view would
    opened.layout = { start: [40, 60], end: [240, 60] };
  }
  return <ReactFlowProvider><Editor opened={opened} scope={scope} /></ReactFlowProvider>;
}

createRoot(document.getElementById('editor-root')).render(<App />);
