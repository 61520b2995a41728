//! Recording audit events without waiting for the disk: handlers queue events, one writer
//! task appends them in batches. A query first waits for everything queued before it.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::limits::{AUDIT_BATCH, AUDIT_PURGE_EVERY, AUDIT_QUEUE};
use crate::storage::{AuditEvent, AuditLog};

enum Msg {
    Event(AuditEvent),
    Sync(oneshot::Sender<()>),
}

/// The queue in front of an [`AuditLog`].
pub struct AuditSink {
    log: Arc<dyn AuditLog>,
    retention_secs: Option<u64>,
    // Started on first use, from inside the runtime (the sink is built before one exists).
    tx: OnceLock<mpsc::Sender<Msg>>,
}

impl AuditSink {
    /// A sink writing to `log`, dropping events older than `retention_days` (0: never).
    pub fn new(log: Arc<dyn AuditLog>, retention_days: u64) -> AuditSink {
        AuditSink {
            log,
            retention_secs: (retention_days > 0).then(|| retention_days * 86_400),
            tx: OnceLock::new(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<Msg> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(AUDIT_QUEUE);
            tokio::spawn(writer(self.log.clone(), self.retention_secs, rx));
            tx
        })
    }

    /// Queue an event. Waits only when the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if self.sender().send(Msg::Event(event)).await.is_err() {
            tracing::error!("audit writer is gone; event lost");
        }
    }

    /// Wait until everything queued so far is written and durable.
    pub async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.sender().send(Msg::Sync(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The log itself, for queries.
    pub fn log(&self) -> &dyn AuditLog {
        &*self.log
    }
}

async fn writer(log: Arc<dyn AuditLog>, retention_secs: Option<u64>, mut rx: mpsc::Receiver<Msg>) {
    let mut last_purge: Option<Instant> = None;
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    let mut syncs = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Event(e) => batch.push(e),
                Msg::Sync(s) => syncs.push(s),
            }
            if batch.len() < AUDIT_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty()
            && let Err(e) = log.append(std::mem::take(&mut batch)).await
        {
            tracing::error!(error = %e, "cannot write audit events");
        }
        if !syncs.is_empty() {
            if let Err(e) = log.flush().await {
                tracing::error!(error = %e, "cannot flush the audit log");
            }
            for s in syncs.drain(..) {
                let _ = s.send(());
            }
        }
        if let Some(keep) = retention_secs
            && last_purge.is_none_or(|t| t.elapsed() >= AUDIT_PURGE_EVERY)
        {
            last_purge = Some(Instant::now());
            match log.purge_before(super::now().saturating_sub(keep)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "audit events past retention dropped"),
                Err(e) => tracing::error!(error = %e, "cannot purge the audit log"),
            }
        }
    }
}
