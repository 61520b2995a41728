//! The audit log in memory.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::storage::audit::{AuditEvent, AuditLog, AuditPage, AuditQuery, Purged};
use crate::storage::meta::MetaError;

struct Entry {
    id: u64,
    event: AuditEvent,
    /// What the event counts for against a size cap: its length as a JSON line, as a log
    /// on disk would store it.
    bytes: u64,
}

#[derive(Default)]
struct State {
    /// Oldest first.
    entries: VecDeque<Entry>,
    next_id: u64,
    bytes: u64,
}

impl State {
    fn drop_oldest(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        self.bytes -= e.bytes;
        Some(e)
    }
}

/// [`AuditLog`] in memory. Its unit of purging is one event, and the newest is always kept
/// (as a log on disk keeps the segment being written), so a purge never empties the log.
#[derive(Default)]
pub struct MemoryAuditLog {
    state: Mutex<State>,
}

impl MemoryAuditLog {
    /// An empty log.
    pub fn new() -> MemoryAuditLog {
        MemoryAuditLog::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(&self, events: Vec<AuditEvent>) -> Result<(), MetaError> {
        let mut s = lock(&self.state);
        for event in events {
            let bytes = serde_json::to_vec(&event).expect("events serialize").len() as u64 + 1;
            let id = s.next_id;
            s.next_id += 1;
            s.bytes += bytes;
            s.entries.push_back(Entry { id, event, bytes });
        }
        Ok(())
    }

    async fn query(&self, q: &AuditQuery, scan_limit: usize) -> Result<AuditPage, MetaError> {
        let s = lock(&self.state);
        let before = q.before.unwrap_or(u64::MAX);
        let mut events = Vec::new();
        let newer_first = s.entries.iter().rev().skip_while(|e| e.id >= before);
        for (scanned, e) in newer_first.enumerate() {
            if events.len() == q.limit {
                // Full: the next page starts below the last event returned.
                let next = events.last().map(|(id, _): &(u64, AuditEvent)| *id);
                return Ok(AuditPage { events, next });
            }
            if scanned == scan_limit {
                // Out of budget: go on from the first entry not read.
                return Ok(AuditPage {
                    events,
                    next: Some(e.id + 1),
                });
            }
            if q.matches(&e.event) {
                events.push((e.id, e.event.clone()));
            }
        }
        Ok(AuditPage { events, next: None })
    }

    async fn purge_before(&self, time: u64) -> Result<usize, MetaError> {
        let mut s = lock(&self.state);
        let mut purged = 0;
        while s.entries.len() > 1 && s.entries.front().is_some_and(|e| e.event.time < time) {
            s.drop_oldest();
            purged += 1;
        }
        Ok(purged)
    }

    async fn purge_to_size(&self, max_bytes: u64) -> Result<Purged, MetaError> {
        let mut s = lock(&self.state);
        let mut purged = Purged::default();
        while s.bytes > max_bytes && s.entries.len() > 1 {
            let e = s.drop_oldest().expect("more than one entry");
            purged.events += 1;
            purged.bytes += e.bytes;
        }
        Ok(purged)
    }

    async fn flush(&self) -> Result<(), MetaError> {
        Ok(())
    }
}
