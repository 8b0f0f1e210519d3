// A CodeMirror 6 editor for a command, script, SQL or HTML body. The language follows the
// `lang` prop, or a script's shebang (python, perl, else shell).
import { useEffect, useRef } from 'react';
import { EditorView, basicSetup } from 'codemirror';
import { EditorState, Compartment } from '@codemirror/state';
import { StreamLanguage } from '@codemirror/language';
import { sql, SQLite } from '@codemirror/lang-sql';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { python } from '@codemirror/legacy-modes/mode/python';
import { perl } from '@codemirror/legacy-modes/mode/perl';
import { html } from '@codemirror/legacy-modes/mode/xml';

function language(lang, value) {
  if (lang === 'sql') return sql({ dialect: SQLite });
  if (lang === 'html') return StreamLanguage.define(html);
  const shebang = (value || '').trimStart().split('\n')[0];
  if (/^#!.*python/.test(shebang)) return StreamLanguage.define(python);
  if (/^#!.*perl/.test(shebang)) return StreamLanguage.define(perl);
  return StreamLanguage.define(shell);
}

export default function Code({ value, onChange, lang, testid, minLines = 4 }) {
  const host = useRef(null);
  const view = useRef(null);
  const langConf = useRef(new Compartment());
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const v = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: value || '',
        extensions: [
          basicSetup,
          langConf.current.of(language(lang, value)),
          EditorView.lineWrapping,
          EditorView.theme({ '&': { minHeight: `${minLines * 1.45}em` }, '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace', fontSize: '12.5px' } }),
          EditorView.updateListener.of((u) => { if (u.docChanged) changed.current(u.state.doc.toString()); }),
        ],
      }),
    });
    view.current = v;
    return () => v.destroy();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // an outside change (another node selected) replaces the text
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== (value || '')) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value || '' } });
    }
    if (v) v.dispatch({ effects: langConf.current.reconfigure(language(lang, value)) });
  }, [value, lang]);

  return <div className="code" data-testid={testid} ref={host} />;
}
