// The editor edits the definition file's own tree (elements, text, CDATA, comments) as the server
// hands it over; the server prints it back as canonical XML. These helpers read and change that
// tree immutably: every change returns a new document.

export const CONTROL_KINDS = ['start', 'end', 'kill', 'fork', 'join'];
export const ACTION_KINDS = [
  'script', 'shell', 'file-executor', 'sql', 'file-monitor', 'data-monitor',
  'transfer', 'email', 'metadata', 'sub-workflow',
];
export const NODE_ELEMENTS = ['start', 'end', 'kill', 'fork', 'join', 'action'];

export const el = (name, attrs = [], children = []) => ({ name, attrs, children });
export const text = (t, cdata = false) => ({ text: t, cdata });
export const isEl = (c) => c && typeof c.name === 'string';

export function attr(e, k) {
  const a = (e.attrs || []).find((p) => p[0] === k);
  return a ? a[1] : undefined;
}

export function withAttr(e, k, v) {
  const attrs = (e.attrs || []).filter((p) => p[0] !== k);
  if (v === undefined || v === null || v === '') return { ...e, attrs };
  const i = (e.attrs || []).findIndex((p) => p[0] === k);
  if (i >= 0) {
    const copy = [...e.attrs];
    copy[i] = [k, String(v)];
    return { ...e, attrs: copy };
  }
  return { ...e, attrs: [...attrs, [k, String(v)]] };
}

export const elements = (e) => (e.children || []).filter(isEl);
export const child = (e, name) => elements(e).find((c) => c.name === name);

// The element's own text (text and CDATA joined), nested elements skipped.
export function textOf(e) {
  if (!e) return '';
  return (e.children || []).filter((c) => typeof c.text === 'string').map((c) => c.text).join('');
}

// Replaces the element's text; multi-line text or text with markup characters goes in CDATA.
export function withText(e, t) {
  const old = (e.children || []).find((c) => typeof c.text === 'string');
  const cdata = old ? old.cdata || /[<&]/.test(t) : /[\n<&]/.test(t);
  const rest = (e.children || []).filter((c) => typeof c.text !== 'string');
  return { ...e, children: t === '' ? rest : [text(t, cdata), ...rest] };
}

// Replaces (or with `null` removes) the first child named `name`; a new one goes last.
export function withChild(e, name, next) {
  const kids = e.children || [];
  const i = kids.findIndex((c) => isEl(c) && c.name === name);
  if (i < 0) return next ? { ...e, children: [...kids, next] } : e;
  const copy = [...kids];
  if (next) copy[i] = next; else copy.splice(i, 1);
  return { ...e, children: copy };
}

export const nodeElements = (doc) => elements(doc.root).filter((c) => NODE_ELEMENTS.includes(c.name));

// The kind of a node element: `start`..`join`, or its action kind.
export function kindOf(e) {
  if (e.name !== 'action') return e.name;
  const k = elements(e).find((c) => c.name !== 'ok' && c.name !== 'error');
  if (!k) return 'action';
  return k.name === 'file-watcher' ? 'file-monitor' : k.name;
}

// Outgoing edges of a node element: {to, kind: ok|error|next, handle}.
export function edgesOf(e) {
  switch (e.name) {
    case 'start':
    case 'join':
      return attr(e, 'to') ? [{ to: attr(e, 'to'), kind: 'next', handle: 'next' }] : [];
    case 'fork':
      return elements(e).filter((p) => p.name === 'path' && attr(p, 'to'))
        .map((p) => ({ to: attr(p, 'to'), kind: 'next', handle: 'next' }));
    case 'action':
      return elements(e).filter((c) => (c.name === 'ok' || c.name === 'error') && attr(c, 'to'))
        .map((c) => ({ to: attr(c, 'to'), kind: c.name, handle: c.name }));
    default:
      return [];
  }
}

export function findNode(doc, name) {
  return nodeElements(doc).find((e) => attr(e, 'name') === name);
}

// Replaces the node element named `name` (or the root's child `name` for coordinator/param-list).
export function updateNode(doc, name, fn) {
  const children = doc.root.children.map((c) =>
    isEl(c) && NODE_ELEMENTS.includes(c.name) && attr(c, 'name') === name ? fn(c) : c);
  return { ...doc, root: { ...doc.root, children } };
}

export function updateRoot(doc, fn) {
  return { ...doc, root: fn(doc.root) };
}

// A root child that is not a node (`coordinator`, `param-list`): replaced, added before the
// first node, or removed with `null`.
export function withRootPart(doc, name, next) {
  const kids = doc.root.children;
  const i = kids.findIndex((c) => isEl(c) && c.name === name);
  const copy = [...kids];
  if (i >= 0) {
    if (next) copy[i] = next; else copy.splice(i, 1);
  } else if (next) {
    let at = kids.findIndex((c) => isEl(c) && NODE_ELEMENTS.includes(c.name));
    if (name === 'param-list') {
      const coord = kids.findIndex((c) => isEl(c) && c.name === 'coordinator');
      if (coord >= 0) at = coord + 1;
    }
    copy.splice(at < 0 ? copy.length : at, 0, next);
  }
  return { ...doc, root: { ...doc.root, children: copy } };
}

// Points every reference to `from` at `to` (or removes the references when `to` is null).
function retarget(e, from, to) {
  switch (e.name) {
    case 'start':
    case 'join':
      return attr(e, 'to') === from ? withAttr(e, 'to', to) : e;
    case 'fork':
    case 'action':
      return {
        ...e,
        children: e.children.flatMap((c) => {
          if (!isEl(c) || !['path', 'ok', 'error'].includes(c.name) || attr(c, 'to') !== from) return [c];
          return to ? [withAttr(c, 'to', to)] : [];
        }),
      };
    default:
      return e;
  }
}

export function renameNode(doc, from, to) {
  const children = doc.root.children.map((c) => {
    if (!isEl(c) || !NODE_ELEMENTS.includes(c.name)) return c;
    const r = retarget(c, from, to);
    return attr(r, 'name') === from ? withAttr(r, 'name', to) : r;
  });
  return { ...doc, root: { ...doc.root, children } };
}

// Removes a node, the comments just before it (they were about it), and the edges into it.
export function deleteNode(doc, name) {
  const kids = doc.root.children;
  const i = kids.findIndex((c) => isEl(c) && NODE_ELEMENTS.includes(c.name) && attr(c, 'name') === name);
  if (i < 0) return doc;
  let from = i;
  while (from > 0 && typeof kids[from - 1].comment === 'string') from -= 1;
  const rest = [...kids.slice(0, from), ...kids.slice(i + 1)];
  const children = rest.map((c) => (isEl(c) && NODE_ELEMENTS.includes(c.name) ? retarget(c, name, null) : c));
  return { ...doc, root: { ...doc.root, children } };
}

// Connects `source` to `target` through `handle` (ok, error, or next).
export function connect(doc, source, handle, target) {
  return updateNode(doc, source, (e) => {
    if (e.name === 'start' || e.name === 'join') return withAttr(e, 'to', target);
    if (e.name === 'fork') {
      if (edgesOf(e).some((x) => x.to === target)) return e;
      return { ...e, children: [...e.children, el('path', [['to', target]])] };
    }
    if (e.name === 'action') {
      const which = handle === 'error' ? 'error' : 'ok';
      const existing = child(e, which);
      const next = existing ? withAttr(existing, 'to', target) : el(which, [['to', target]]);
      if (existing) return withChild(e, which, next);
      // keep <ok> before <error>, both after the kind element
      const kids = [...e.children];
      const okAt = kids.findIndex((c) => isEl(c) && c.name === 'ok');
      if (which === 'ok' && kids.some((c) => isEl(c) && c.name === 'error')) {
        kids.splice(kids.findIndex((c) => isEl(c) && c.name === 'error'), 0, next);
      } else if (which === 'error' && okAt >= 0) {
        kids.splice(okAt + 1, 0, next);
      } else {
        kids.push(next);
      }
      return { ...e, children: kids };
    }
    return e;
  });
}

export function disconnect(doc, source, handle, target) {
  return updateNode(doc, source, (e) => {
    if (e.name === 'start' || e.name === 'join') return withAttr(e, 'to', null);
    if (e.name === 'fork') {
      return { ...e, children: e.children.filter((c) => !(isEl(c) && c.name === 'path' && attr(c, 'to') === target)) };
    }
    if (e.name === 'action') return withChild(e, handle === 'error' ? 'error' : 'ok', null);
    return e;
  });
}

export function uniqueName(doc, base) {
  const taken = new Set(nodeElements(doc).map((e) => attr(e, 'name')));
  if (!taken.has(base)) return base;
  for (let i = 2; ; i += 1) if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
}

// A new node of a kind, with the children its kind needs.
export function newNode(kind, name) {
  const n = [['name', name]];
  switch (kind) {
    case 'start': return el('start', n);
    case 'end': return el('end', n);
    case 'kill': return el('kill', n, [el('message', [], [text('The workflow failed')])]);
    case 'fork': return el('fork', n);
    case 'join': return el('join', n);
    default: break;
  }
  const body = {
    script: () => el('script', [], [el('code', [], [text('\n#!/bin/bash\necho "hello"\n', true)])]),
    shell: () => el('shell', [], [el('command', [], [text('echo hello')])]),
    'file-executor': () => el('file-executor', [], [el('command', [], [text('./run.sh')])]),
    sql: () => el('sql', [['db-link', '']], [text('select 1;', true)]),
    'file-monitor': () => el('file-monitor', [], [el('file', [['file-link', 'local'], ['min-num', '1']], [text('/data/in/*.csv')])]),
    'data-monitor': () => el('data-monitor', [], [
      el('source', [['type', 'COMMAND']], [text('echo 1')]),
      el('min', [['type', 'NUM']], [text('1')]),
    ]),
    transfer: () => el('transfer', [], [
      el('source', [['type', 'DB'], ['db-link', '']], [text('select 1 as one')]),
      el('target', [['type', 'FILE'], ['path', '/tmp/out.tsv']]),
    ]),
    email: () => el('email', [['subject', 'Report']], [text('<p>Hello</p>', true)]),
    metadata: () => el('metadata', [['db-link', ''], ['table', 'my_table']], [el('table-comment', [], [text('What the table holds')])]),
    'sub-workflow': () => el('sub-workflow', [['name', ''], ['wait', 'true']]),
  }[kind];
  return el('action', n, [body()]);
}

// The skeleton of a new workflow: start → end.
export function newDocument(dir) {
  return {
    prolog: [],
    root: el('work-flow', [['name', 'new_workflow'], ['creator', 'editor'], ['dir', dir || '/tmp']], [
      el('start', [['name', 'start'], ['to', 'end']]),
      el('end', [['name', 'end']]),
    ]),
  };
}
