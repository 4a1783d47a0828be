//! A progress line on stderr when it is a terminal ("downloading x: 3.1 MiB of 12 MiB (26%),
//! 9.8 MiB/s"), redrawn a few times a second; nothing otherwise (the journal gets no progress
//! lines; sd-notify gets STATUS from the commands). The engine reports bytes through callbacks;
//! only the binary draws.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::text::human_bytes;

/// One transfer's progress line.
#[derive(Debug)]
pub struct Progress {
    verb: &'static str,
    name: String,
    tty: bool,
    started: Instant,
    /// `None` until a line has been drawn.
    last: Option<Instant>,
}

impl Progress {
    /// A line for `verb name` ("downloading", "checking").
    pub fn new(verb: &'static str, name: &str) -> Self {
        Progress {
            verb,
            name: crate::text::escape_control(name),
            tty: io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
        }
    }

    /// `done` of `total` bytes; redrawn at most four times a second.
    pub fn update(&mut self, done: u64, total: Option<u64>) {
        if !self.tty {
            return;
        }
        let due = match self.last {
            None => self.started.elapsed() >= Duration::from_millis(250),
            Some(l) => l.elapsed() >= Duration::from_millis(250),
        };
        if due {
            self.last = Some(Instant::now());
            self.draw(done, total);
        }
    }

    /// A backup's `read` bytes (of unknown total) and `written` (compressed) so far; redrawn
    /// each time (the job reports once a second).
    pub fn update_written(&mut self, read: u64, written: u64) {
        if !self.tty {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let _ = write!(
            io::stderr(),
            "\r\x1b[K{} {}: {} read, {} written, {}/s, {:.0} s",
            self.verb,
            self.name,
            human_bytes(read),
            human_bytes(written),
            human_bytes((read as f64 / secs) as u64),
            secs
        );
    }

    fn draw(&self, done: u64, total: Option<u64>) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let of = match total {
            Some(t) if t > 0 => format!(
                " of {} ({:.0}%)",
                human_bytes(t),
                (done as f64 * 100.0 / t as f64).min(100.0)
            ),
            _ => String::new(),
        };
        let _ = write!(
            io::stderr(),
            "\r\x1b[K{} {}: {}{of}, {}/s",
            self.verb,
            self.name,
            human_bytes(done),
            human_bytes(rate as u64)
        );
    }

    /// The final line (100% when it went well, the line cleared when not); a transfer too
    /// small and quick to have drawn a line (a sidecar) gets none.
    pub fn finish(&self, ok: bool, done: u64) {
        if self.tty && (self.last.is_some() || done >= 1 << 20) {
            if ok {
                self.draw(done, Some(done));
                let _ = writeln!(io::stderr());
            } else {
                let _ = write!(io::stderr(), "\r\x1b[K");
            }
        }
    }
}

/// Progress lines for the engine's transfers, one per transfer (see [`crate::job::Transfers`]).
#[derive(Debug)]
pub struct Terminal {
    verb: &'static str,
    current: Option<(Progress, Option<u64>)>,
}

impl Terminal {
    /// Lines that say `verb` ("downloading", "checking").
    pub fn new(verb: &'static str) -> Self {
        Terminal {
            verb,
            current: None,
        }
    }
}

impl crate::job::Transfers for Terminal {
    fn start(&mut self, name: &str, total: Option<u64>) {
        self.current = Some((Progress::new(self.verb, name), total));
    }

    fn update(&mut self, done: u64) {
        if let Some((p, total)) = self.current.as_mut() {
            p.update(done, *total);
        }
    }

    fn finish(&mut self, ok: bool, done: u64) {
        if let Some((p, _)) = self.current.take() {
            p.finish(ok, done);
        }
    }
}

/// A backup's live line on a terminal: each database's bytes read and written and the rate,
/// redrawn as the job reports progress, finished when the database is done (nothing when
/// stderr is not a terminal: the journal gets log lines instead).
#[derive(Debug, Default)]
pub struct BackupLine {
    current: std::sync::Mutex<Option<Progress>>,
}

impl crate::job::Listener for BackupLine {
    fn event(&self, event: &crate::job::Event<'_>) {
        use crate::job::Event;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Started { db, .. } => *current = Some(Progress::new("backing up", db)),
            Event::Progress { read, written, .. } => {
                if let Some(p) = current.as_mut() {
                    p.update_written(*read, *written);
                }
            }
            Event::Completed { manifest, .. } => {
                if let Some(p) = current.take() {
                    p.finish(true, manifest.raw_bytes);
                }
            }
            Event::Failed { .. } | Event::Skipped { .. } | Event::RunFinished { .. } => {
                if let Some(p) = current.take() {
                    p.finish(false, 0);
                }
            }
            _ => {}
        }
    }
}
