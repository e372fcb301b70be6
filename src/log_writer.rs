//! Where log lines go: stderr, with access lines written in batches.
//!
//! An access line written on its own is a `write` per request, ~6 % of the
//! CPU of a cached keep-alive request (BENCHMARKS.md, item 18). So, as
//! nginx's `access_log ... buffer= flush=`, access lines gather in a buffer
//! per thread that is written when it holds `BATCH` bytes, and by a flusher
//! thread every `[log] access_flush`. Every other line is written at once,
//! after whatever access lines wait, so a warning never comes before the
//! lines of the requests that preceded it; "stopped", the last line of a
//! shutdown, writes them all too.
//!
//! Access lines are also formatted by davgate itself rather than by
//! tracing's formatter, in the same compact or JSON form (see
//! `gateway::access_log`), when no colours are wanted: tracing's per-field
//! visitor and styling were the larger half of a line's cost.

use crate::config::LogFormat;
use std::cell::OnceCell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::Duration;
use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// A thread's waiting lines are written once they reach this size: nginx's
/// usual `buffer=32k`, ~150 lines, so a busy worker writes a few times a
/// second and an idle one holds little.
const BATCH: usize = 32 * 1024;

/// Some thread may have lines waiting: lets a line that is not an access
/// line skip the register when nothing waits (a wrong-password flood logs
/// one such line per request).
static ANY_WAITING: AtomicBool = AtomicBool::new(false);

/// One thread's access lines not written yet.
type Waiting = Arc<Mutex<Vec<u8>>>;

/// Every thread's waiting lines, where the flusher and the other lines
/// find them; set when lines are batched.
static WAITING: OnceLock<Mutex<Vec<Waiting>>> = OnceLock::new();

/// Whether the flusher runs: started with the first batched line, so a
/// CLI command that logs no request starts no thread.
static FLUSHER: OnceLock<bool> = OnceLock::new();

/// How often the flusher writes (zero: lines are not batched) and the form
/// access lines are written in directly, if they are: set once, by the
/// process's one [`LogWriter`].
static SETUP: OnceLock<(Duration, Option<LogFormat>)> = OnceLock::new();

thread_local! {
    /// This thread's waiting lines, registered with its first line.
    static OWN: OnceCell<ThreadBuffer> = const { OnceCell::new() };
}

/// The log's writer for tracing's fmt layer. Access lines are batched
/// unless `[log] access_flush` is zero.
pub struct LogWriter(());

impl LogWriter {
    /// `direct`: the form davgate writes access lines in itself (`None`
    /// leaves them to tracing's formatter, e.g. for colours).
    pub fn new(flush: Duration, direct: Option<LogFormat>) -> Self {
        if SETUP.set((flush, direct)).is_ok() && !flush.is_zero() {
            let _ = WAITING.set(Mutex::default());
            // A panic's message comes after the lines that preceded it,
            // and a panic that ends the process does not lose them.
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                write_waiting_unless_held();
                report(info);
            }));
        }
        Self(())
    }
}

/// The subscriber for `format`: `filter` decides what is written, and
/// `writer` where (a [`LogWriter`] in `davgate serve`). JSON events are
/// flat, without span context: davgate enters no spans.
pub fn subscriber<W>(
    format: LogFormat,
    ansi: bool,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => {
            Box::new(builder.json().flatten_event(true).with_current_span(false).with_span_list(false).finish())
        }
        LogFormat::Compact => Box::new(builder.compact().with_ansi(ansi).finish()),
    }
}

/// The form access lines are written in by davgate itself, if they are.
pub(crate) fn direct_format() -> Option<LogFormat> {
    SETUP.get().and_then(|(_, direct)| *direct)
}

/// Writes one access line, formatted into the buffer by `line`: into this
/// thread's batch, or at once when lines are not batched.
pub(crate) fn write_access(line: impl FnOnce(&mut Vec<u8>)) {
    let mut line = Some(line);
    if batched() {
        let appended = OWN.try_with(|own| {
            if let Some(line) = line.take() {
                append(&mut own.get_or_init(ThreadBuffer::register).lock(), line);
            }
        });
        if appended.is_ok() {
            return;
        }
    }
    if let Some(line) = line {
        let mut out = Vec::with_capacity(256);
        line(&mut out);
        let _ = io::stderr().write_all(&out);
    }
}

/// Access lines wait only with a thread that writes them in time.
fn batched() -> bool {
    let Some(&(flush, _)) = SETUP.get() else { return false };
    if flush.is_zero() {
        return false;
    }
    *FLUSHER.get_or_init(|| {
        let flusher = std::thread::Builder::new().name("davgate-log".into()).spawn(move || {
            loop {
                std::thread::sleep(flush);
                write_waiting();
            }
        });
        // Without one, lines go out one by one rather than late.
        if let Err(e) = &flusher {
            eprintln!("davgate: access lines are written one by one: no thread to batch them ({e})");
        }
        flusher.is_ok()
    })
}

/// Adds a line to a thread's batch; writes the batch once it is full.
fn append(waiting: &mut MutexGuard<'_, Vec<u8>>, line: impl FnOnce(&mut Vec<u8>)) {
    line(waiting);
    if waiting.len() >= BATCH {
        write_out(waiting);
    } else {
        ANY_WAITING.store(true, Ordering::Release);
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        write_waiting();
        LineWriter::Now(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        if meta.target() == "davgate::access" && batched() { LineWriter::Batched } else { self.make_writer() }
    }
}

/// The writer of one line (tracing's fmt layer writes each line whole).
pub enum LineWriter {
    Now(io::Stderr),
    Batched,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LineWriter::Now(stderr) => stderr.write(buf),
            LineWriter::Batched => {
                let batched = OWN.try_with(|own| {
                    append(&mut own.get_or_init(ThreadBuffer::register).lock(), |out| out.extend_from_slice(buf));
                });
                match batched {
                    Ok(()) => Ok(buf.len()),
                    // A thread that is ending has no buffer any more.
                    Err(_) => io::stderr().write_all(buf).map(|()| buf.len()),
                }
            }
        }
    }

    /// A direct line in one piece: `Stderr::write_all` holds its lock for
    /// the whole line, so lines of two threads never mix.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            LineWriter::Now(stderr) => stderr.write_all(buf),
            LineWriter::Batched => self.write(buf).map(drop),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LineWriter::Now(stderr) => stderr.flush(),
            LineWriter::Batched => Ok(()),
        }
    }
}

/// Writes every thread's waiting lines now: before another line, at exit.
pub fn write_waiting() {
    let Some(all) = WAITING.get() else { return };
    if !ANY_WAITING.swap(false, Ordering::AcqRel) {
        return;
    }
    // Lock order: the register, then a buffer (a thread writing its own
    // full buffer holds only that one).
    for buffer in all.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        write_out(&mut buffer.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// As [`write_waiting`], from a panic: skips what a lock holds (the
/// panicking thread may hold it) rather than waiting forever.
fn write_waiting_unless_held() {
    let Some(all) = WAITING.get() else { return };
    let all = match all.try_lock() {
        Ok(all) => all,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    for buffer in all.iter() {
        match buffer.try_lock() {
            Ok(mut waiting) => write_out(&mut waiting),
            Err(TryLockError::Poisoned(e)) => write_out(&mut e.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
    }
}

/// Writes `waiting` (its owner's lock held, so a thread's lines stay in order).
fn write_out(waiting: &mut MutexGuard<'_, Vec<u8>>) {
    if waiting.is_empty() {
        return;
    }
    // A log that cannot be written loses these lines, as a line written
    // directly would be lost; the request goes on either way.
    let _ = io::stderr().write_all(waiting);
    waiting.clear();
    if waiting.capacity() > 2 * BATCH {
        waiting.shrink_to(BATCH);
    }
}

/// A thread's buffer, registered so the flusher reaches it; a thread that
/// ends writes what it holds and leaves the register.
struct ThreadBuffer(Waiting);

impl ThreadBuffer {
    fn register() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        if let Some(all) = WAITING.get() {
            all.lock().unwrap_or_else(|e| e.into_inner()).push(buffer.clone());
        }
        Self(buffer)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ThreadBuffer {
    fn drop(&mut self) {
        write_out(&mut self.lock());
        if let Some(all) = WAITING.get() {
            all.lock().unwrap_or_else(|e| e.into_inner()).retain(|b| !Arc::ptr_eq(b, &self.0));
        }
    }
}
