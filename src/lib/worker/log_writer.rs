//! The log writer: batches task output lines into `task_log` (one INSERT per batch), flushing at
//! least every 200 ms; what is still buffered when results are reported goes to the reporter, which
//! writes it in the results' own transaction.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::executor::LogMsg;
use crate::store::{LogLine, OutageLog, Store};

const FLUSH_EVERY: Duration = Duration::from_millis(200);
const BATCH: usize = 500;
/// Past this many unwritten lines (a long outage) the oldest are dropped rather than eating memory.
const MAX_BUFFERED: usize = 100_000;

pub(super) async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<LogMsg>) {
    let mut buf: Vec<LogLine> = Vec::new();
    let mut outage = OutageLog::new("log writer");
    loop {
        let mut taker = None;
        match rx.recv().await {
            None => break,
            Some(msg) => receive(msg, &mut buf, &mut taker),
        }
        let deadline = Instant::now() + FLUSH_EVERY;
        while taker.is_none() && buf.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(msg)) => receive(msg, &mut buf, &mut taker),
                Ok(None) | Err(_) => break,
            }
        }
        // what queued up meanwhile (other attempts' output) goes in the same write
        while taker.is_none() && buf.len() < BATCH {
            match rx.try_recv() {
                Ok(msg) => receive(msg, &mut buf, &mut taker),
                Err(_) => break,
            }
        }
        match taker {
            // everything sent before the request is in `buf` (the channel keeps order)
            Some(taker) => {
                if let Err(lines) = taker.send(std::mem::take(&mut buf)) {
                    buf = lines;
                }
            }
            None => flush(&*store, &mut buf, &mut outage).await,
        }
    }
    flush(&*store, &mut buf, &mut outage).await;
}

fn receive(msg: LogMsg, buf: &mut Vec<LogLine>, taker: &mut Option<oneshot::Sender<Vec<LogLine>>>) {
    match msg {
        LogMsg::Line(l) => buf.push(l),
        LogMsg::Take(t) => *taker = Some(t),
    }
}

/// Writes the buffer in batches; on failure keeps it for the next round (bounded).
async fn flush(store: &dyn Store, buf: &mut Vec<LogLine>, outage: &mut OutageLog) {
    while !buf.is_empty() {
        let n = buf.len().min(BATCH);
        match store.task_log_insert_many(&buf[..n]).await {
            Ok(()) => {
                outage.recovered();
                buf.drain(..n);
            }
            Err(e) => {
                outage.failed(&e);
                if buf.len() > MAX_BUFFERED {
                    let excess = buf.len() - MAX_BUFFERED;
                    buf.drain(..excess);
                }
                return;
            }
        }
    }
}

/// Asks the writer for the lines it has not written yet; empty once the writer is gone.
pub(super) async fn take(tx: &mpsc::Sender<LogMsg>) -> Vec<LogLine> {
    let (send, recv) = oneshot::channel();
    if tx.send(LogMsg::Take(send)).await.is_err() {
        return Vec::new();
    }
    recv.await.unwrap_or_default()
}
