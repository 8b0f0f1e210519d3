//! The log writer: batches task output lines into `task_log` (one INSERT per batch), flushing at
//! least every 200 ms, and on request before an attempt's result is reported.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
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
        let mut acks = Vec::new();
        match rx.recv().await {
            None => break,
            Some(LogMsg::Line(l)) => buf.push(l),
            Some(LogMsg::Flush(ack)) => acks.push(ack),
        }
        let deadline = Instant::now() + FLUSH_EVERY;
        while acks.is_empty() && buf.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(LogMsg::Line(l))) => buf.push(l),
                Ok(Some(LogMsg::Flush(ack))) => acks.push(ack),
                Ok(None) | Err(_) => break,
            }
        }
        // what is already queued goes in the same INSERT: attempts ending together (a batch
        // claimed together) then share one flush instead of one each
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(LogMsg::Line(l)) => buf.push(l),
                Ok(LogMsg::Flush(ack)) => acks.push(ack),
                Err(_) => break,
            }
        }
        flush(&*store, &mut buf, &mut outage, !acks.is_empty()).await;
        for ack in acks {
            let _ = ack.send(());
        }
    }
    flush(&*store, &mut buf, &mut outage, true).await;
}

/// Writes the buffer in batches; on failure keeps it for the next round (bounded), except that a
/// flush someone waits for gives up after a few tries so results are never held back by logs.
async fn flush(store: &dyn Store, buf: &mut Vec<LogLine>, outage: &mut OutageLog, waited_on: bool) {
    let mut tries = 0;
    while !buf.is_empty() {
        let n = buf.len().min(BATCH);
        match store.task_log_insert_many(&buf[..n]).await {
            Ok(()) => {
                outage.recovered();
                buf.drain(..n);
            }
            Err(e) => {
                outage.failed(&e);
                tries += 1;
                if buf.len() > MAX_BUFFERED {
                    let excess = buf.len() - MAX_BUFFERED;
                    buf.drain(..excess);
                }
                if !waited_on || tries >= 3 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
        }
    }
}
