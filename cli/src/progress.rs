//! Progress of image transfers on stderr: one bar per blob being sent (bytes, with the
//! blob's short digest), cleared when the blob is done. Nothing at all when stderr is not a
//! terminal: the summary line says what happened, and CI logs stay clean.
//!
//! ```ignore
//! let progress = Progress::new();
//! pier_client::copy::copy(src, &r, dst, &r, &select, &|e| progress.event(e)).await?;
//! ```

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pier_client::copy::CopyEvent;
use pier_oci::Digest;

/// The bar of one blob: short digest, bar, bytes sent of its size, rate.
const TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";

/// Bars for the blobs of a copy, driven by [`CopyEvent`]s.
pub struct Progress {
    /// `None`: stderr is not a terminal, show nothing.
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress {
    /// Bars on stderr when it is a terminal, else nothing.
    pub fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::with_target(ProgressDrawTarget::stderr())
        } else {
            Progress::silent()
        }
    }

    /// Shows nothing.
    pub fn silent() -> Progress {
        Progress {
            multi: None,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Bars drawn on `target`.
    fn with_target(target: ProgressDrawTarget) -> Progress {
        Progress {
            multi: Some(MultiProgress::with_draw_target(target)),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one event of a copy (pass `&|e| progress.event(e)` as the copy's callback).
    pub fn event(&self, event: CopyEvent) {
        let Some(multi) = &self.multi else {
            return;
        };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            CopyEvent::BlobStarted { digest, size } => {
                let style = ProgressStyle::with_template(TEMPLATE)
                    .expect("a valid progress template")
                    .progress_chars("=> ");
                let bar = multi.add(ProgressBar::new(size).with_style(style));
                bar.set_message(short(&digest));
                if let Some(old) = bars.insert(digest, bar) {
                    old.finish_and_clear();
                    multi.remove(&old);
                }
            }
            CopyEvent::BlobProgress { digest, sent } => {
                if let Some(bar) = bars.get(&digest) {
                    bar.set_position(sent);
                }
            }
            CopyEvent::BlobDone { digest, .. } => {
                if let Some(bar) = bars.remove(&digest) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
            CopyEvent::ManifestPut { .. } => {}
        }
    }

    /// Blobs with a bar now.
    #[cfg(test)]
    fn active(&self) -> usize {
        self.bars.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

impl Drop for Progress {
    /// A failed copy leaves bars of blobs that never finished: clear them so that the error
    /// message is the last thing on the screen.
    fn drop(&mut self) {
        let bars = std::mem::take(self.bars.get_mut().unwrap_or_else(|e| e.into_inner()));
        for bar in bars.into_values() {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

/// `sha256:0123456789ab`.
pub fn short(digest: &Digest) -> String {
    let text = digest.to_string();
    text.get(..19).map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_client::copy::BlobOutcome;

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn one_bar_per_blob_being_sent_gone_when_done() {
        let p = Progress::with_target(ProgressDrawTarget::hidden());
        let (a, b) = (digest(1), digest(2));
        p.event(CopyEvent::BlobStarted {
            digest: a.clone(),
            size: 100,
        });
        p.event(CopyEvent::BlobStarted {
            digest: b.clone(),
            size: 10,
        });
        assert_eq!(p.active(), 2);
        p.event(CopyEvent::BlobProgress {
            digest: a.clone(),
            sent: 40,
        });
        {
            let bars = p.bars.lock().unwrap();
            assert_eq!(bars[&a].position(), 40);
            assert_eq!(bars[&a].length(), Some(100));
            assert_eq!(bars[&a].message(), short(&a));
        }
        p.event(CopyEvent::BlobDone {
            digest: a.clone(),
            size: 100,
            outcome: BlobOutcome::Copied,
        });
        assert_eq!(p.active(), 1);
        // Blobs that were there or mounted never had a bar; progress of an unknown blob is
        // ignored.
        p.event(CopyEvent::BlobDone {
            digest: digest(3),
            size: 5,
            outcome: BlobOutcome::Present,
        });
        p.event(CopyEvent::BlobProgress { digest: a, sent: 100 });
        p.event(CopyEvent::ManifestPut { target: "x".into() });
        assert_eq!(p.active(), 1);
        drop(p);
    }

    #[test]
    fn silent_progress_keeps_nothing() {
        let p = Progress::silent();
        p.event(CopyEvent::BlobStarted {
            digest: digest(1),
            size: 100,
        });
        assert_eq!(p.active(), 0);
    }

    #[test]
    fn usable_as_a_copy_callback() {
        fn takes(_: pier_client::copy::Progress<'_>) {}
        let p = Progress::silent();
        takes(&|e| p.event(e));
    }

    #[test]
    fn short_digests() {
        let d = digest(1);
        assert_eq!(short(&d).len(), 19);
        assert!(d.to_string().starts_with(&short(&d)));
    }
}
