//! Recording audit events without waiting for the disk: handlers queue events, one writer
//! task appends them in batches. A query first waits for everything queued before it.
//!
//! What one caller can make the log hold is bounded three ways: every field is cut to a
//! fixed length; repeated failures (and anonymous token grants) from one address beyond a
//! few per window become one summary event with a count; and the log as a whole has a size
//! cap besides its age, dropping its oldest segments and saying so in the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::limits::{
    AUDIT_AGGREGATE_MAX, AUDIT_AGGREGATE_WINDOW, AUDIT_BATCH, AUDIT_BURST, AUDIT_DETAIL_MAX, AUDIT_FIELD_MAX,
    AUDIT_PURGE_EVERY, AUDIT_QUEUE, AUDIT_SIZE_CHECK_EVERY,
};
use crate::storage::{ActorKind, AuditAction, AuditEvent, AuditLog, Outcome};

enum Msg {
    Event(AuditEvent),
    Sync(oneshot::Sender<()>),
}

/// Events of one kind from one address within the current window.
struct Aggregate {
    since: Instant,
    written: u32,
    suppressed: u64,
    last: Option<AuditEvent>,
}

type AggregateKey = (String, AuditAction, Outcome);

/// The queue in front of an [`AuditLog`].
pub struct AuditSink {
    log: Arc<dyn AuditLog>,
    retention_secs: Option<u64>,
    max_bytes: Option<u64>,
    aggregates: Arc<Mutex<HashMap<AggregateKey, Aggregate>>>,
    // Started on first use, from inside the runtime (the sink is built before one exists).
    tx: OnceLock<mpsc::Sender<Msg>>,
}

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut.
fn bound(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

fn bound_event(e: &mut AuditEvent) {
    bound(&mut e.actor, AUDIT_FIELD_MAX);
    bound(&mut e.client, AUDIT_FIELD_MAX);
    for f in [
        &mut e.project,
        &mut e.repository,
        &mut e.reference,
        &mut e.digest,
        &mut e.target,
    ]
    .into_iter()
    .flatten()
    {
        bound(f, AUDIT_FIELD_MAX);
    }
    if let Some(d) = &mut e.detail {
        bound(d, AUDIT_DETAIL_MAX);
    }
}

/// Events anyone can cause in bulk without an account: failed logins and token requests,
/// throttled logins, and tokens handed to anonymous callers.
fn aggregated(e: &AuditEvent) -> bool {
    match e.action {
        AuditAction::Login | AuditAction::LoginThrottled => e.result != Outcome::Success,
        AuditAction::Token => e.result != Outcome::Success || e.actor_kind == ActorKind::Anonymous,
        _ => false,
    }
}

/// The summary of what an aggregate held back.
fn summary(key: &AggregateKey, a: &mut Aggregate) -> Option<AuditEvent> {
    if a.suppressed == 0 {
        return None;
    }
    let mut e = a.last.take()?;
    e.detail = Some(format!(
        "{} more {} events with result {} from {} within {} s, not logged one by one (the last is shown)",
        a.suppressed,
        serde_json::to_value(key.1).ok()?.as_str()?,
        serde_json::to_value(key.2).ok()?.as_str()?,
        key.0,
        AUDIT_AGGREGATE_WINDOW.as_secs()
    ));
    a.suppressed = 0;
    Some(e)
}

/// Summaries of every aggregate whose window has ended (all of them with `all`), which are
/// then forgotten; with `all`, open windows stay but start counting afresh.
fn drain_summaries(map: &mut HashMap<AggregateKey, Aggregate>, all: bool) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    map.retain(|k, a| {
        let ended = a.since.elapsed() >= AUDIT_AGGREGATE_WINDOW;
        if ended || all {
            out.extend(summary(k, a));
        }
        !ended
    });
    out
}

impl AuditSink {
    /// A sink writing to `log`, dropping events older than `retention_days` (0: never) and
    /// the oldest ones beyond `max_bytes` (0: no cap).
    pub fn new(log: Arc<dyn AuditLog>, retention_days: u64, max_bytes: u64) -> AuditSink {
        AuditSink {
            log,
            retention_secs: (retention_days > 0).then(|| retention_days * 86_400),
            max_bytes: (max_bytes > 0).then_some(max_bytes),
            aggregates: Arc::default(),
            tx: OnceLock::new(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<Msg> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(AUDIT_QUEUE);
            let w = Writer {
                log: self.log.clone(),
                retention_secs: self.retention_secs,
                max_bytes: self.max_bytes,
                aggregates: self.aggregates.clone(),
            };
            tokio::spawn(w.run(rx));
            tx
        })
    }

    /// Queue an event (bounded; bulk failures from one address are counted rather than
    /// queued). Waits only when the queue is full.
    pub async fn record(&self, mut event: AuditEvent) {
        bound_event(&mut event);
        let mut out = vec![event];
        if aggregated(&out[0]) {
            let mut map = self.aggregates.lock().expect("audit aggregates lock");
            let e = &out[0];
            let key = (e.client.clone(), e.action, e.result);
            if let Some(a) = map.get_mut(&key)
                && a.since.elapsed() >= AUDIT_AGGREGATE_WINDOW
            {
                // The window is over: its summary goes out before this event starts anew.
                let s = summary(&key, a);
                map.remove(&key);
                out.splice(0..0, s);
            }
            if !map.contains_key(&key) && map.len() >= AUDIT_AGGREGATE_MAX {
                let mut ended = drain_summaries(&mut map, false);
                if map.len() >= AUDIT_AGGREGATE_MAX {
                    // Still full of live windows: write all of them out and start over.
                    ended.extend(drain_summaries(&mut map, true));
                    map.clear();
                }
                out.splice(0..0, ended);
            }
            let a = map.entry(key).or_insert(Aggregate {
                since: Instant::now(),
                written: 0,
                suppressed: 0,
                last: None,
            });
            if a.written < AUDIT_BURST {
                a.written += 1;
            } else {
                a.suppressed += 1;
                a.last = out.pop();
            }
        }
        for e in out {
            if self.sender().send(Msg::Event(e)).await.is_err() {
                tracing::error!("audit writer is gone; event lost");
            }
        }
    }

    /// Wait until everything queued so far (and a summary of what aggregates held back) is
    /// written and durable.
    pub async fn sync(&self) {
        let pending = drain_summaries(&mut self.aggregates.lock().expect("audit aggregates lock"), true);
        for e in pending {
            let _ = self.sender().send(Msg::Event(e)).await;
        }
        let (tx, rx) = oneshot::channel();
        if self.sender().send(Msg::Sync(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Events queued and not yet handed to the log.
    pub fn queued(&self) -> usize {
        self.tx.get().map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// The log itself, for queries.
    pub fn log(&self) -> &dyn AuditLog {
        &*self.log
    }
}

struct Writer {
    log: Arc<dyn AuditLog>,
    retention_secs: Option<u64>,
    max_bytes: Option<u64>,
    aggregates: Arc<Mutex<HashMap<AggregateKey, Aggregate>>>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut last_purge: Option<Instant> = None;
        let mut last_size_check: Option<Instant> = None;
        let mut batch = Vec::with_capacity(AUDIT_BATCH);
        let mut syncs = Vec::new();
        let mut tick = tokio::time::interval(AUDIT_AGGREGATE_WINDOW.min(Duration::from_secs(10)));
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = tick.tick() => {
                    // Windows that ended without a later event: write their summaries.
                    let ended = drain_summaries(&mut self.aggregates.lock().expect("audit aggregates lock"), false);
                    if !ended.is_empty() {
                        self.append(ended).await;
                    }
                    continue;
                }
            };
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
            if !batch.is_empty() {
                self.append(std::mem::take(&mut batch)).await;
            }
            if let Some(max) = self.max_bytes
                && last_size_check.is_none_or(|t| t.elapsed() >= AUDIT_SIZE_CHECK_EVERY)
            {
                last_size_check = Some(Instant::now());
                self.cap(max).await;
            }
            if !syncs.is_empty() {
                if let Err(e) = self.log.flush().await {
                    tracing::error!(error = %e, "cannot flush the audit log");
                }
                for s in syncs.drain(..) {
                    let _ = s.send(());
                }
            }
            if let Some(keep) = self.retention_secs
                && last_purge.is_none_or(|t| t.elapsed() >= AUDIT_PURGE_EVERY)
            {
                last_purge = Some(Instant::now());
                match self.log.purge_before(super::now().saturating_sub(keep)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "audit events past retention dropped"),
                    Err(e) => tracing::error!(error = %e, "cannot purge the audit log"),
                }
            }
        }
    }

    async fn append(&self, events: Vec<AuditEvent>) {
        if let Err(e) = self.log.append(events).await {
            tracing::error!(error = %e, "cannot write audit events");
        }
    }

    /// Keep the log under its cap, and record in it that older events were dropped.
    async fn cap(&self, max: u64) {
        match self.log.purge_to_size(max).await {
            Ok(p) if p.events == 0 => {}
            Ok(p) => {
                tracing::warn!(
                    events = p.events,
                    bytes = p.bytes,
                    max,
                    "audit log over its size cap; oldest events dropped"
                );
                self.append(vec![pier_event(
                    AuditAction::AuditPurged,
                    format!(
                        "dropped the {} oldest events ({} bytes) to keep the audit log under {max} bytes",
                        p.events, p.bytes
                    ),
                )])
                .await;
            }
            Err(e) => tracing::error!(error = %e, "cannot cap the audit log"),
        }
    }
}

/// An event of pier's own doing, about the log itself.
fn pier_event(action: AuditAction, detail: String) -> AuditEvent {
    let mut e = AuditEvent::new(
        super::now(),
        "pier".into(),
        ActorKind::Anonymous,
        action,
        "local".into(),
        Outcome::Success,
    );
    e.detail = Some(detail);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_on_char_boundaries() {
        let mut s = "é".repeat(AUDIT_FIELD_MAX);
        bound(&mut s, AUDIT_FIELD_MAX);
        assert!(s.len() <= AUDIT_FIELD_MAX && s.ends_with('…'), "{}", s.len());
        let mut short = "abc".to_owned();
        bound(&mut short, AUDIT_FIELD_MAX);
        assert_eq!(short, "abc");
    }

    /// A log whose appends wait for a permit each.
    struct Stuck(tokio::sync::Semaphore);

    #[async_trait::async_trait]
    impl AuditLog for Stuck {
        async fn append(&self, _: Vec<AuditEvent>) -> Result<(), crate::storage::MetaError> {
            self.0.acquire().await.expect("open").forget();
            Ok(())
        }
        async fn query(
            &self,
            _: &crate::storage::AuditQuery,
            _: usize,
        ) -> Result<crate::storage::AuditPage, crate::storage::MetaError> {
            unreachable!("not queried")
        }
        async fn purge_before(&self, _: u64) -> Result<usize, crate::storage::MetaError> {
            Ok(0)
        }
        async fn purge_to_size(&self, _: u64) -> Result<crate::storage::Purged, crate::storage::MetaError> {
            Ok(crate::storage::Purged { events: 0, bytes: 0 })
        }
        async fn flush(&self) -> Result<(), crate::storage::MetaError> {
            Ok(())
        }
    }

    async fn settles(sink: &AuditSink, want: usize) {
        for _ in 0..500 {
            if sink.queued() == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("queue depth {} never became {want}", sink.queued());
    }

    #[tokio::test]
    async fn queue_depth_counts_events_not_yet_taken_by_the_writer() {
        let log = Arc::new(Stuck(tokio::sync::Semaphore::new(0)));
        let sink = AuditSink::new(log.clone(), 0, 0);
        assert_eq!(sink.queued(), 0, "before the writer starts");
        sink.record(pier_event(AuditAction::Push, "queued".into())).await;
        // The writer takes the first event and waits in `append`; the next ones queue.
        settles(&sink, 0).await;
        for _ in 0..3 {
            sink.record(pier_event(AuditAction::Push, "queued".into())).await;
        }
        assert_eq!(sink.queued(), 3);
        log.0.add_permits(2);
        settles(&sink, 0).await;
    }
}
