//! A FILE target: written to a temporary file beside it, renamed into place only when complete.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio_util::sync::CancellationToken;

use crate::executor::db::TextRow;
use crate::executor::delimited::{self};
use crate::executor::Stopper;
use crate::state::AttemptEnd;

use super::{recv, AbortOnDrop, Rx, WriterDone};

pub(super) struct FileTarget {
    pub(super) tmp: PathBuf,
    pub(super) path: PathBuf,
    pub(super) delimiter: String,
    /// The header record, when asked for.
    pub(super) header: Option<TextRow>,
}

pub(super) async fn file_writer(
    f: FileTarget,
    rx: Rx,
    stop: Stopper,
    abort: CancellationToken,
) -> Result<WriterDone, String> {
    let guard = AbortOnDrop::new(abort);
    let result = write_file(&f, rx, &stop).await;
    if result.is_ok() {
        guard.disarm();
    }
    match result {
        Ok((rows, None)) => {
            tokio::fs::rename(&f.tmp, &f.path).await.map_err(|e| {
                format!(
                    "cannot move `{}` into place as `{}`: {e}",
                    f.tmp.display(),
                    f.path.display()
                )
            })?;
            Ok(WriterDone {
                rows,
                stopped: None,
            })
        }
        other => {
            let _ = tokio::fs::remove_file(&f.tmp).await;
            other.map(|(rows, stopped)| WriterDone { rows, stopped })
        }
    }
}

pub(super) async fn write_file(
    f: &FileTarget,
    rx: Rx,
    stop: &Stopper,
) -> Result<(u64, Option<AttemptEnd>), String> {
    let tmp: &Path = &f.tmp;
    let file = tokio::fs::File::create(tmp)
        .await
        .map_err(|e| format!("cannot create `{}`: {e}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rows = 0u64;
    let io = |e: std::io::Error| format!("writing `{}`: {e}", tmp.display());
    let mut text = String::new();
    if let Some(h) = &f.header {
        delimited::write_record(&mut text, h.iter().map(Option::as_deref), &f.delimiter);
    }
    loop {
        let Some(batch) = recv(rx.clone()).await else {
            break;
        };
        if let Some(end) = stop.check() {
            return Ok((rows, Some(end)));
        }
        for row in batch.rows.rows() {
            delimited::write_record(&mut text, row.values(), &f.delimiter);
            rows += 1;
        }
        out.write_all(text.as_bytes()).await.map_err(io)?;
        text.clear();
    }
    out.write_all(text.as_bytes()).await.map_err(io)?;
    out.flush().await.map_err(io)?;
    out.into_inner().sync_all().await.map_err(io)?;
    Ok((rows, None))
}
