//! The audit log as append-only segment files of JSON lines: `DATA/audit/<first id>.jsonl`.
//!
//! Appending is a buffered write, so recording every pull costs next to nothing and does
//! not grow a database's caches; a new segment starts every [`SEGMENT_BYTES`] or each UTC
//! day, and retention deletes whole segments. Queries read segments newest first, keeping
//! only a page of matches in memory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::audit::{AuditEvent, AuditLog, AuditPage, AuditQuery, Purged};
use super::meta::MetaError;

/// A segment is closed once it holds this many bytes (by default).
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The smallest segment size: a size cap drops whole segments, so a small cap needs small
/// segments, but not so small that the directory fills with files.
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
const DAY: u64 = 86_400;
const SUFFIX: &str = ".jsonl";

#[derive(Serialize, Deserialize)]
struct Line {
    id: u64,
    #[serde(flatten)]
    event: AuditEvent,
}

struct Open {
    file: BufWriter<File>,
    bytes: u64,
    day: u64,
}

struct State {
    dir: PathBuf,
    segment_bytes: u64,
    next_id: u64,
    current: Option<Open>,
}

/// [`AuditLog`] in segment files.
#[derive(Clone)]
pub struct FileAuditLog {
    state: Arc<Mutex<State>>,
}

/// An I/O failure of the log's files, named as such in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("audit log: {0}")]
struct AuditIo(#[source] io::Error);

fn io_err(e: io::Error) -> MetaError {
    MetaError::failed(AuditIo(e))
}

/// Segments, oldest first, as (first id, path).
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The complete lines of a segment (a line cut short by a crash is not an event).
fn lines(path: &Path) -> io::Result<impl Iterator<Item = Line>> {
    let reader = BufReader::new(File::open(path)?);
    Ok(reader
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_slice::<Line>(&l).ok()))
}

impl FileAuditLog {
    /// Open (creating) the log in `dir`. A last line cut short by a crash is dropped.
    pub fn open(dir: &Path) -> Result<FileAuditLog, MetaError> {
        FileAuditLog::open_with_segments(dir, SEGMENT_BYTES)
    }

    /// The segment size that suits a size cap of `max_bytes` (0: none): about an eighth of
    /// it, so the cap drops little at a time.
    pub fn segment_bytes_for(max_bytes: u64) -> u64 {
        match max_bytes {
            0 => SEGMENT_BYTES,
            m => (m / 8).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES),
        }
    }

    /// [`FileAuditLog::open`] with segments closed at `segment_bytes`.
    pub fn open_with_segments(dir: &Path, segment_bytes: u64) -> Result<FileAuditLog, MetaError> {
        super::private_dir(dir).map_err(io_err)?;
        let mut next_id = 0;
        if let Some((_, last)) = segments(dir).map_err(io_err)?.pop() {
            let mut f = OpenOptions::new().read(true).write(true).open(&last).map_err(io_err)?;
            let mut good = 0u64;
            let mut buf = Vec::new();
            let mut reader = BufReader::new(&mut f);
            let mut offset = 0u64;
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                offset += n as u64;
                if buf.ends_with(b"\n")
                    && let Ok(l) = serde_json::from_slice::<Line>(&buf)
                {
                    next_id = l.id + 1;
                    good = offset;
                }
            }
            drop(reader);
            f.set_len(good).map_err(io_err)?;
        }
        Ok(FileAuditLog {
            state: Arc::new(Mutex::new(State {
                dir: dir.to_path_buf(),
                segment_bytes: segment_bytes.max(MIN_SEGMENT_BYTES),
                next_id,
                current: None,
            })),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> io::Result<T> + Send + 'static,
    ) -> Result<T, MetaError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || f(&mut state.lock().expect("audit log lock")))
            .await
            .map_err(MetaError::from_join)?
            .map_err(io_err)
    }
}

impl State {
    /// The segment to append to: the open one unless it is full or from another day.
    fn segment(&mut self, day: u64) -> io::Result<&mut Open> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.bytes >= self.segment_bytes || c.day != day)
            && let Some(mut c) = self.current.take()
        {
            c.file.flush()?;
            c.file.get_ref().sync_data()?;
        }
        if self.current.is_none() {
            // Reopen the newest segment after a restart if it is today's and not full.
            let reuse = segments(&self.dir)?.pop().and_then(|(_, p)| {
                let len = std::fs::metadata(&p).ok()?.len();
                let last_day = lines(&p).ok()?.last().map(|l| l.event.time / DAY)?;
                (len < self.segment_bytes && last_day == day).then_some((p, len))
            });
            let (path, bytes) = match reuse {
                Some(x) => x,
                None => (self.dir.join(format!("{:020}{SUFFIX}", self.next_id)), 0),
            };
            let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
            file.seek(SeekFrom::End(0))?;
            if bytes == 0 {
                // A new file must survive a crash to be found again.
                File::open(&self.dir)?.sync_all()?;
            }
            self.current = Some(Open {
                file: BufWriter::new(file),
                bytes,
                day,
            });
        }
        Ok(self.current.as_mut().expect("just opened"))
    }
}

#[async_trait]
impl AuditLog for FileAuditLog {
    async fn append(&self, events: Vec<AuditEvent>) -> Result<(), MetaError> {
        self.run(move |s| {
            for event in events {
                let day = event.time / DAY;
                let id = s.next_id;
                let mut line = serde_json::to_vec(&Line { id, event }).expect("events serialize");
                line.push(b'\n');
                let seg = s.segment(day)?;
                seg.file.write_all(&line)?;
                seg.bytes += line.len() as u64;
                s.next_id += 1;
            }
            Ok(())
        })
        .await
    }

    async fn query(&self, q: &AuditQuery, scan_limit: usize) -> Result<AuditPage, MetaError> {
        let q = q.clone();
        self.run(move |s| {
            if let Some(c) = s.current.as_mut() {
                c.file.flush()?;
            }
            let mut events: Vec<(u64, AuditEvent)> = Vec::new();
            let mut scanned = 0usize;
            let before = q.before.unwrap_or(u64::MAX);
            for (first, path) in segments(&s.dir)?.into_iter().rev() {
                if first >= before {
                    continue;
                }
                let want = q.limit - events.len();
                // The newest `want` matches of this segment; the oldest id read, in case
                // the scan budget ends inside it.
                let mut ring: VecDeque<(u64, AuditEvent)> = VecDeque::with_capacity(want.min(1024));
                let mut seg_scanned = 0usize;
                for l in lines(&path)? {
                    if l.id >= before {
                        break;
                    }
                    seg_scanned += 1;
                    if q.matches(&l.event) {
                        if ring.len() == want {
                            ring.pop_front();
                        }
                        ring.push_back((l.id, l.event));
                    }
                }
                scanned += seg_scanned;
                events.extend(ring.into_iter().rev());
                if events.len() == q.limit {
                    let next = events.last().map(|(id, _)| *id);
                    return Ok(AuditPage { events, next });
                }
                if scanned >= scan_limit {
                    // Go on below this segment next time.
                    return Ok(AuditPage {
                        events,
                        next: Some(first),
                    });
                }
            }
            Ok(AuditPage { events, next: None })
        })
        .await
    }

    async fn purge_before(&self, time: u64) -> Result<usize, MetaError> {
        self.run(move |s| {
            let segs = segments(&s.dir)?;
            let mut purged = 0;
            // Never the newest segment: it is (or becomes) the one being written.
            for (_, path) in segs.iter().take(segs.len().saturating_sub(1)) {
                let newest = lines(path)?.last().map(|l| l.event.time);
                if newest.is_some_and(|t| t >= time) {
                    break;
                }
                purged += lines(path)?.count();
                std::fs::remove_file(path)?;
            }
            Ok(purged)
        })
        .await
    }

    async fn purge_to_size(&self, max_bytes: u64) -> Result<Purged, MetaError> {
        self.run(move |s| {
            let segs = segments(&s.dir)?;
            let mut sizes = Vec::with_capacity(segs.len());
            for (_, path) in &segs {
                sizes.push(std::fs::metadata(path)?.len());
            }
            let mut total: u64 = sizes.iter().sum();
            let mut purged = Purged::default();
            // Never the newest segment: it is (or becomes) the one being written.
            for ((_, path), size) in segs.iter().zip(&sizes).take(segs.len().saturating_sub(1)) {
                if total <= max_bytes {
                    break;
                }
                purged.events += lines(path)?.count();
                purged.bytes += size;
                total -= size;
                std::fs::remove_file(path)?;
            }
            Ok(purged)
        })
        .await
    }

    async fn flush(&self) -> Result<(), MetaError> {
        self.run(|s| {
            if let Some(c) = s.current.as_mut() {
                c.file.flush()?;
                c.file.get_ref().sync_data()?;
            }
            Ok(())
        })
        .await
    }
}

impl AuditQuery {
    /// Whether an event passes every filter but the cursor.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.actor.as_deref().is_none_or(|a| a == e.actor)
            && self.project.as_deref().is_none_or(|p| e.project.as_deref() == Some(p))
            && self.action.is_none_or(|a| a == e.action)
            && self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time < u)
    }
}
