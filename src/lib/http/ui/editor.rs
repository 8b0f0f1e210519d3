//! The visual workflow editor's page. The editor itself is a front-end bundle built from `editor/`
//! (React Flow for the canvas, CodeMirror for code) and committed under `ui/editor/`, so neither the
//! build nor `cargo test` needs npm; `editor_bundle_is_current` checks it matches its sources. It
//! runs under a strict Content-Security-Policy: one external module script, one stylesheet, no
//! inline code, no eval.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::{asset, page, Nav, UiCaller, UiResult};
use crate::http::api::visible_workflow;
use crate::http::extract::ApiPath;
use crate::http::AppState;
use crate::store::TokenRole;

const JS: &str = include_str!("editor/editor.js");
const CSS: &str = include_str!("editor/editor.css");

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

fn editor_page(caller: &crate::http::auth::Caller, workflow: Option<&str>) -> UiResult {
    caller.require(TokenRole::Admin)?;
    let title = match workflow {
        Some(w) => format!("Edit {w}"),
        None => "New workflow".to_string(),
    };
    let body = html! {
        link rel="stylesheet" href="/ui/assets/editor.css";
        div #editor-root
            data-workflow=(workflow.unwrap_or_default())
            data-scope=(caller.dir.clone().unwrap_or_default()) {
            div.empty { "Loading the editor…" }
        }
        script type="module" src="/ui/assets/editor.js" {}
    };
    Ok(page(caller, Nav::Workflows, &title, body))
}

/// `/ui/editor`: a new workflow.
pub(crate) async fn new_workflow(UiCaller(caller): UiCaller) -> UiResult {
    editor_page(&caller, None)
}

/// `/ui/editor/{name}`: edit a stored workflow.
pub(crate) async fn edit_workflow(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    ApiPath(name): ApiPath<String>,
) -> UiResult {
    caller.require(TokenRole::Admin)?;
    let w = visible_workflow(&state, &caller, &name).await?;
    editor_page(&caller, Some(&w.name))
}

#[cfg(test)]
mod tests {
    /// The committed bundle was built from the committed sources: `editor/stamp.mjs` records a hash
    /// of the sources when it builds; this recomputes it. On a mismatch, run `npm ci && npm run
    /// build` in `editor/` and commit the result.
    #[test]
    fn editor_bundle_is_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("editor");
        let recorded = include_str!("editor/SOURCE_HASH").trim();
        let mut files: Vec<std::path::PathBuf> = vec![
            root.join("package.json"),
            root.join("package-lock.json"),
            root.join("vite.config.js"),
            root.join("stamp.mjs"),
        ];
        let mut stack = vec![root.join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("editor/src").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        let mut rel: Vec<(String, std::path::PathBuf)> = files
            .into_iter()
            .map(|p| {
                let r = p
                    .strip_prefix(&root)
                    .expect("under editor/")
                    .to_string_lossy()
                    .replace('\\', "/");
                (r, p)
            })
            .collect();
        rel.sort();
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (name, path) in &rel {
            h.update(name.as_bytes());
            h.update([0u8]);
            h.update(std::fs::read(path).expect("read source"));
            h.update([0u8]);
        }
        let now: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            now, recorded,
            "the editor bundle is older than its sources: run `cd editor && npm ci && npm run build` and commit src/lib/http/ui/editor/"
        );
    }
}
