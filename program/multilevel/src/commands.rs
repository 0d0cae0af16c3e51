//! The client commands: get, mget, put, del, scan, count, clear, stats, import, export and watch.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use indicatif::{ProgressBar, ProgressStyle};
use multilevel_proto::IssueError;
use multilevel_tokio::{BatchOp, ConnectionState, Error, IterOptions, KeyRange, WatchOptions, WatchStart};
use tokio::sync::mpsc;

use crate::Failure;
use crate::args::{Command, Format, HexArg, ImportArgs, RangeArgs, StatsFormat, ValueFormat};
use crate::connect::Connection;
use crate::encoding::{parse_arg, text, write_entry};
use crate::jsonl;
use crate::watch::WatchCommand;

/// Entries asked of an iterator at a time by `scan` and `export`.
const ITER_BATCH: usize = 1000;
/// Import batches sent before waiting for the first answer.
const IMPORT_IN_FLIGHT: usize = 8;
/// An import batch is sent early once its keys and values reach this many bytes, well below
/// the server's 16 MiB frame limit.
const IMPORT_BATCH_BYTES: usize = 4 << 20;

/// A client command with its arguments checked and turned into bytes, ready to run: mistakes
/// (bad hex, `clear` without a range) are found before connecting, and exit with status 2.
pub(crate) enum Prepared<'a> {
    /// `get`.
    Get { key: Vec<u8>, format: ValueFormat, hex: bool },
    /// `mget`.
    Mget { keys: Vec<Vec<u8>>, format: Format, hex: bool },
    /// `put`; a value to read from stdin is read before connecting.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// `del`.
    Del { key: Vec<u8> },
    /// `incr`.
    Incr { key: Vec<u8>, by: i64 },
    /// `scan`.
    Scan { options: IterOptions, format: Format },
    /// `count`.
    Count { options: IterOptions },
    /// `clear`.
    Clear { range: KeyRange, reverse: bool, limit: Option<u64> },
    /// `stats`.
    Stats { format: StatsFormat },
    /// `import`.
    Import(&'a ImportArgs),
    /// `export`.
    Export { options: IterOptions, file: Option<&'a Path> },
    /// `watch`.
    Watch(WatchCommand),
}

impl<'a> Prepared<'a> {
    /// Checks the arguments of a client command; `serve` and `bench` are not client commands.
    pub(crate) fn new(command: &'a Command) -> Result<Self, Failure> {
        let arg = |text: &str, hex: HexArg, what: &str| parse_arg(text, hex.hex, what).map_err(Failure::usage);
        Ok(match command {
            Command::Serve(_) | Command::Bench(_) => {
                return Err(Failure::new("serve and bench are not client commands"));
            }
            Command::Get(args) => {
                // Raw bytes for files and pipes; escaped text for people.
                let auto = if io::stdout().is_terminal() { ValueFormat::Text } else { ValueFormat::Raw };
                Prepared::Get {
                    key: arg(&args.key, args.shared.hex, "KEY")?,
                    format: args.format().unwrap_or(auto),
                    hex: args.shared.hex.hex,
                }
            }
            Command::Mget(args) => Prepared::Mget {
                keys: args.keys.iter().map(|key| arg(key, args.shared.hex, "KEY")).collect::<Result<_, _>>()?,
                format: args.format,
                hex: args.shared.hex.hex,
            },
            Command::Put(args) => {
                let key = arg(&args.key, args.shared.hex, "KEY")?;
                let value = match &args.value {
                    Some(value) => arg(value, args.shared.hex, "VALUE")?,
                    None if io::stdin().is_terminal() => {
                        return Err(Failure::usage("put needs a VALUE, or the value piped on stdin"));
                    }
                    None => {
                        let mut value = Vec::new();
                        io::stdin()
                            .read_to_end(&mut value)
                            .map_err(|err| Failure::new(format!("reading stdin: {err}")))?;
                        value
                    }
                };
                Prepared::Put { key, value }
            }
            Command::Del(args) => Prepared::Del { key: arg(&args.key, args.shared.hex, "KEY")? },
            Command::Incr(args) => Prepared::Incr { key: arg(&args.key, args.shared.hex, "KEY")?, by: args.by },
            Command::Scan(args) => Prepared::Scan {
                options: iter_options(&args.shared.range, args.shared.hex.hex, !args.values_only, !args.keys_only)?,
                format: args.format,
            },
            Command::Watch(args) => {
                if args.shared.range.reverse {
                    return Err(Failure::usage("watch delivers changes in commit order: --reverse does not apply"));
                }
                let start = args.from.map_or(WatchStart::Now, WatchStart::after);
                let range = key_range(&args.shared.range, args.shared.hex.hex)?;
                let options = WatchOptions { range, start, values: !args.keys_only };
                Prepared::Watch(WatchCommand { options, format: args.format, limit: args.shared.range.limit })
            }
            Command::Count(args) => {
                Prepared::Count { options: iter_options(&args.shared.range, args.shared.hex.hex, true, false)? }
            }
            Command::Clear(args) => {
                if !args.all && !args.shared.range.is_bounded() {
                    return Err(Failure::usage(
                        "clear needs a range (--prefix, --gt, --gte, --lt, --lte or --limit), or --all to delete \
                         every key",
                    ));
                }
                Prepared::Clear {
                    range: key_range(&args.shared.range, args.shared.hex.hex)?,
                    reverse: args.shared.range.reverse,
                    limit: args.shared.range.limit,
                }
            }
            Command::Stats(args) => Prepared::Stats { format: args.format },
            Command::Import(args) => Prepared::Import(args),
            Command::Export(args) => Prepared::Export {
                options: iter_options(&args.shared.range, args.shared.hex.hex, true, true)?,
                file: args.file.as_deref().filter(|f| *f != Path::new("-")),
            },
        })
    }

    /// Runs the command against the server.
    pub(crate) async fn run(self, db: &Connection) -> Result<(), Failure> {
        match self {
            Prepared::Get { key, format, hex } => get(db, &key, format, hex).await,
            Prepared::Mget { keys, format, hex } => mget(db, &keys, format, hex).await,
            Prepared::Put { key, value } => put(db, key, value).await,
            Prepared::Del { key } => db.run(db.db.del(&key)).await,
            Prepared::Incr { key, by } => {
                let value = db.run(db.db.increment(&key, by)).await?;
                println!("{value}");
                Ok(())
            }
            Prepared::Scan { options, format } => scan(db, options, format).await,
            Prepared::Count { options } => count(db, options).await,
            Prepared::Clear { range, reverse, limit } => db.run(db.db.clear_with(range, reverse, limit)).await,
            Prepared::Stats { format } => stats(db, format).await,
            Prepared::Import(args) => import(db, args).await,
            Prepared::Export { options, file } => export(db, options, file).await,
            Prepared::Watch(watch) => watch.run(db).await,
        }
    }
}

/// Standard output, buffered.
fn stdout() -> BufWriter<io::Stdout> {
    BufWriter::new(io::stdout())
}

/// `get KEY`: prints the value; a missing key prints nothing and fails.
async fn get(db: &Connection, key: &[u8], format: ValueFormat, hex: bool) -> Result<(), Failure> {
    let Some(value) = db.run(db.db.get(key)).await? else {
        return Err(Failure::new(format!("not found: {}", shown(hex, key))));
    };
    let mut out = stdout();
    match format {
        ValueFormat::Raw => out.write_all(&value),
        ValueFormat::Text => write_entry(&mut out, Format::Text, None, Some(&value)),
        ValueFormat::Hex => write_entry(&mut out, Format::Hex, None, Some(&value)),
        ValueFormat::Json => write_entry(&mut out, Format::Json, Some(key), Some(&value)),
    }
    .and_then(|()| out.flush())
    .map_err(Failure::output)
}

/// `mget KEY...`: a line per key, in the order given; fails after printing if any is missing.
async fn mget(db: &Connection, keys: &[Vec<u8>], format: Format, hex: bool) -> Result<(), Failure> {
    let values = db.run(db.db.get_many(keys)).await?;
    let mut out = stdout();
    let mut missing = Vec::new();
    for (key, value) in keys.iter().zip(&values) {
        let written = match (value, format) {
            (None, Format::Json) => out
                .write_all(b"{\"key\":")
                .and_then(|()| jsonl::write_bytes(&mut out, key))
                .and_then(|()| out.write_all(b",\"value\":null}\n")),
            (None, format) => write_entry(&mut out, format, Some(key), None),
            (Some(value), format) => write_entry(&mut out, format, Some(key), Some(value)),
        };
        written.map_err(Failure::output)?;
        if value.is_none() {
            missing.push(shown(hex, key));
        }
    }
    out.flush().map_err(Failure::output)?;
    if missing.is_empty() { Ok(()) } else { Err(Failure::new(format!("not found: {}", missing.join(", ")))) }
}

/// A key as the user gave it, for messages.
fn shown(hex: bool, key: &[u8]) -> String {
    if hex { hex::encode(key) } else { text(key) }
}

/// `put KEY [VALUE]`: a value over the server's limit is named as such.
async fn put(db: &Connection, key: Vec<u8>, value: Vec<u8>) -> Result<(), Failure> {
    let value_len = value.len();
    match db.call(db.db.put(&key, &value)).await {
        Ok(()) => Ok(()),
        Err(Error::Issue(IssueError::TooLarge { len, max })) => {
            // The request is the value and a few bytes of key and framing: the largest value
            // that fits is the limit less those.
            let max_value = max.saturating_sub(len.saturating_sub(value_len));
            Err(Failure::new(format!("value too large (max {max_value} bytes): {value_len} bytes")))
        }
        Err(err) => Err(db.failure(err)),
    }
}

/// The key range of the range flags: `--prefix`'s keys, narrowed by the bounds given.
fn key_range(range: &RangeArgs, hex: bool) -> Result<KeyRange, Failure> {
    let bound = |key: &Option<String>, flag: &str| {
        key.as_deref().map(|key| parse_arg(key, hex, flag).map(Bytes::from)).transpose().map_err(Failure::usage)
    };
    let mut keys = match bound(&range.prefix, "--prefix")? {
        Some(prefix) => KeyRange::prefix(&prefix),
        None => KeyRange::all(),
    };
    if let Some(key) = bound(&range.gt, "--gt")? {
        keys = keys.after(&key);
    }
    if let Some(key) = bound(&range.gte, "--gte")? {
        keys = keys.from_key(&key);
    }
    if let Some(key) = bound(&range.lt, "--lt")? {
        keys = keys.before(&key);
    }
    if let Some(key) = bound(&range.lte, "--lte")? {
        keys = keys.to_key(&key);
    }
    Ok(keys)
}

/// The iterator options for range flags.
fn iter_options(range: &RangeArgs, hex: bool, keys: bool, values: bool) -> Result<IterOptions, Failure> {
    Ok(IterOptions { range: key_range(range, hex)?, reverse: range.reverse, limit: range.limit, keys, values })
}

/// Streams the entries of `options` into `write`, a batch at a time; returns how many.
async fn stream_entries(
    db: &Connection,
    options: IterOptions,
    progress: &ProgressBar,
    mut write: impl FnMut(Option<&[u8]>, Option<&[u8]>) -> io::Result<()>,
) -> Result<u64, Failure> {
    // The options say which half of each entry was asked for.
    let (keys, values) = (options.keys, options.values);
    let mut iter = db.db.iter(options).map_err(|err| db.failure(err))?;
    let mut count = 0u64;
    loop {
        let batch = db.run(iter.next_batch(ITER_BATCH)).await?;
        if batch.is_empty() {
            return Ok(count);
        }
        for entry in &batch {
            write(keys.then_some(&entry.key[..]), values.then_some(&entry.value[..])).map_err(Failure::output)?;
        }
        count += batch.len() as u64;
        progress.set_position(count);
    }
}

/// `scan`: prints the entries of a range.
async fn scan(db: &Connection, options: IterOptions, format: Format) -> Result<(), Failure> {
    let mut out = stdout();
    stream_entries(db, options, &ProgressBar::hidden(), |key, value| write_entry(&mut out, format, key, value)).await?;
    out.flush().map_err(Failure::output)
}

/// `count`: prints how many keys a range holds (reading keys only).
async fn count(db: &Connection, options: IterOptions) -> Result<(), Failure> {
    let count = stream_entries(db, options, &ProgressBar::hidden(), |_, _| Ok(())).await?;
    let mut out = stdout();
    writeln!(out, "{count}").and_then(|()| out.flush()).map_err(Failure::output)
}

/// `stats`: prints the server's counters, `name value` per line or one JSON object.
async fn stats(db: &Connection, format: StatsFormat) -> Result<(), Failure> {
    let stats = db.run(db.client.stats()).await?;
    let mut out = stdout();
    let written = if format == StatsFormat::Json {
        let object: serde_json::Map<String, serde_json::Value> =
            stats.into_iter().map(|(name, value)| (name, value.into())).collect();
        serde_json::to_writer(&mut out, &object).map_err(io::Error::from).and_then(|()| out.write_all(b"\n"))
    } else {
        // The names come from the server: escaped like keys.
        stats.iter().try_for_each(|(name, value)| writeln!(out, "{} {value}", text(name.as_bytes())))
    };
    written.and_then(|()| out.flush()).map_err(Failure::output)
}

/// A progress display on stderr when it is a terminal; hidden otherwise.
fn progress(total_bytes: Option<u64>, what: &'static str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total_bytes {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{spinner} {prefix}{wide_bar} {bytes}/{total_bytes} ({eta}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(&format!("{{spinner}} {{prefix}}{{elapsed}} {{human_pos}} entries {what}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// While a progress display shows, says on it when the connection is lost and being made
/// again (with retry), so a stalled transfer says why; the count stays where it was and goes on
/// from there. Stops when dropped.
struct ReconnectNotice(Option<tokio::task::JoinHandle<()>>);

impl ReconnectNotice {
    fn new(db: &Connection, bar: &ProgressBar) -> Self {
        if bar.is_hidden() {
            return Self(None);
        }
        let (mut state, bar) = (db.client.watch_state(), bar.clone());
        let notice = format!("reconnecting to {}... ", db.target());
        Self(Some(tokio::spawn(async move {
            while state.changed().await.is_ok() {
                let connected = *state.borrow_and_update() == ConnectionState::Connected;
                bar.set_prefix(if connected { String::new() } else { notice.clone() });
            }
        })))
    }
}

impl Drop for ReconnectNotice {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Where `export` writes.
enum ExportTarget {
    /// Standard output (no FILE, or `-`).
    Stdout,
    /// A regular file (or none yet) at this path (a symbolic link's target): written under a
    /// temporary name beside it, renamed over it when complete.
    Replace(PathBuf, tempfile::NamedTempFile),
    /// Something that is not a regular file (`/dev/stdout`, a FIFO): written in place.
    InPlace(File),
}

/// `export [FILE]`: writes the entries of a range as JSON lines. A file is written under a
/// temporary name beside it and renamed over it only when complete, so a failed export leaves
/// an earlier file as it was.
async fn export(db: &Connection, options: IterOptions, file: Option<&Path>) -> Result<(), Failure> {
    let target = match file {
        None => ExportTarget::Stdout,
        Some(path) => {
            let cannot = |err: io::Error| Failure::new(format!("cannot create {}: {err}", path.display()));
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => {
                    return Err(Failure::new(format!("cannot create {}: it is a directory", path.display())));
                }
                Ok(meta) if !meta.is_file() => ExportTarget::InPlace(File::create(path).map_err(cannot)?),
                Ok(_) => {
                    // Replace what a symbolic link points at, not the link.
                    let real = std::fs::canonicalize(path).map_err(cannot)?;
                    let temp = temp_beside(&real)?;
                    ExportTarget::Replace(real, temp)
                }
                Err(_) => ExportTarget::Replace(path.to_owned(), temp_beside(path)?),
            }
        }
    };
    let mut out: BufWriter<Box<dyn Write + '_>> = match &target {
        ExportTarget::Stdout => BufWriter::new(Box::new(io::stdout())),
        ExportTarget::Replace(_, temp) => BufWriter::new(Box::new(temp.as_file())),
        ExportTarget::InPlace(file) => BufWriter::new(Box::new(file)),
    };
    let progress = progress(None, "exported");
    let _notice = ReconnectNotice::new(db, &progress);
    let count = stream_entries(db, options, &progress, |key, value| jsonl::write_entry(&mut out, key, value)).await;
    progress.finish_and_clear();
    let count = count?;
    out.flush().map_err(Failure::output)?;
    drop(out);
    if let ExportTarget::Replace(path, temp) = target {
        let cannot = |err: &dyn std::fmt::Display| Failure::new(format!("cannot write {}: {err}", path.display()));
        temp.as_file().sync_all().map_err(|err| cannot(&err))?;
        temp.persist(&path).map_err(|err| cannot(&err.error))?;
    }
    eprintln!("exported {}", entries(count));
    Ok(())
}

/// A temporary file in the directory of `path`, named after it, with the permissions of the
/// file it will replace (else those of a new file).
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, Failure> {
    let cannot = |err: &dyn std::fmt::Display| Failure::new(format!("cannot create {}: {err}", path.display()));
    let name = path.file_name().ok_or_else(|| cannot(&"not a file name"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{}.", name.to_string_lossy());
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666)); // less the umask, as for a new file
    }
    let temp = builder.tempfile_in(dir).map_err(|err| cannot(&err))?;
    if let Ok(existing) = std::fs::metadata(path) {
        temp.as_file().set_permissions(existing.permissions()).map_err(|err| cannot(&err))?;
    }
    Ok(temp)
}

/// `1 entry`, `2 entries`.
fn entries(count: u64) -> String {
    if count == 1 { "1 entry".into() } else { format!("{count} entries") }
}

/// A batch of entries read from the input, ready to send.
struct Chunk {
    ops: Vec<BatchOp>,
    /// Bytes of input read up to the end of this chunk.
    read: u64,
}

/// Reads JSON lines from `input` into chunks of at most `batch_size` entries, on a blocking
/// thread; stops at the first bad line, sending its error.
fn read_chunks(input: impl BufRead, name: &str, batch_size: usize, tx: &mpsc::Sender<Result<Chunk, Failure>>) {
    let mut ops = Vec::with_capacity(batch_size);
    let (mut bytes, mut read) = (0usize, 0u64);
    let mut lines = input.split(b'\n');
    let mut number = 0u64;
    loop {
        let line = match lines.next().transpose() {
            Ok(line) => line,
            Err(err) => {
                let _ = tx.blocking_send(Err(Failure::new(format!("reading {name}: {err}"))));
                return;
            }
        };
        let at_end = line.is_none();
        if let Some(line) = line {
            number += 1;
            read += line.len() as u64 + 1;
            let parsed = std::str::from_utf8(&line)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(|line| if line.trim().is_empty() { Ok(None) } else { jsonl::parse_entry(line).map(Some) });
            match parsed {
                Ok(None) => {}
                Ok(Some((key, value))) => {
                    bytes += key.len() + value.len();
                    ops.push(BatchOp::Put { key: Bytes::from(key), value: Bytes::from(value) });
                }
                Err(err) => {
                    let _ = tx.blocking_send(Err(Failure::new(format!("{name}, line {number}: {err}"))));
                    return;
                }
            }
        }
        if !ops.is_empty() && (at_end || ops.len() >= batch_size || bytes >= IMPORT_BATCH_BYTES) {
            let chunk = Chunk { ops: std::mem::replace(&mut ops, Vec::with_capacity(batch_size)), read };
            bytes = 0;
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // the import stopped
            }
        }
        if at_end {
            return;
        }
    }
}

/// `import [FILE]`: writes the entries of JSON lines, in batches, several in flight.
async fn import(db: &Connection, args: &ImportArgs) -> Result<(), Failure> {
    let path: Option<PathBuf> = args.file.clone().filter(|f| f != Path::new("-"));
    let (input, name, total): (Box<dyn BufRead + Send>, String, Option<u64>) = match &path {
        Some(path) => {
            let file =
                File::open(path).map_err(|err| Failure::new(format!("cannot open {}: {err}", path.display())))?;
            let total = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(BufReader::with_capacity(256 << 10, file)), path.display().to_string(), total)
        }
        None => (Box::new(BufReader::with_capacity(256 << 10, io::stdin())), "stdin".to_owned(), None),
    };
    let (tx, mut rx) = mpsc::channel(IMPORT_IN_FLIGHT);
    let batch_size = args.batch_size as usize;
    // Not joined: if the import fails while the reader waits on stdin, the program exits anyway.
    tokio::task::spawn_blocking(move || read_chunks(input, &name, batch_size, &tx));

    let progress = progress(total, "imported");
    let _notice = ReconnectNotice::new(db, &progress);
    let mut in_flight = FuturesOrdered::new();
    let mut imported = 0u64;
    let mut input_done = false;
    let result = loop {
        tokio::select! {
            // First, so that each batch pushed below is polled, and so issued, before the next
            // one is pushed: batches reach the server in file order, and a key written twice
            // keeps its last value.
            biased;
            done = in_flight.next(), if !in_flight.is_empty() => match done {
                Some(Ok((count, read))) => {
                    imported += count;
                    match total {
                        Some(_) => progress.set_position(read),
                        None => progress.set_position(imported),
                    }
                    progress.set_message(format!("{imported} entries"));
                }
                Some(Err(failure)) => break Err(failure),
                None => {}
            },
            chunk = rx.recv(), if !input_done && in_flight.len() < IMPORT_IN_FLIGHT => match chunk {
                Some(Ok(Chunk { ops, read })) => {
                    let count = ops.len() as u64;
                    in_flight.push_back(async move {
                        db.run(db.db.batch(ops)).await.map(|()| (count, read))
                    });
                }
                Some(Err(failure)) => break Err(failure),
                None => input_done = true,
            },
            else => break Ok(()),
        }
    };
    progress.finish_and_clear();
    match result {
        Ok(()) => {
            eprintln!("imported {}", entries(imported));
            Ok(())
        }
        Err(failure) => {
            // Batches already sent may still be written; wait for them so the count is true.
            while let Some(Ok((count, _))) = in_flight.next().await {
                imported += count;
            }
            Err(failure.context(&format!("import stopped after {}", entries(imported))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_narrowed_by_bounds() {
        let range = RangeArgs {
            prefix: Some("n/".into()),
            gt: Some("n/1".into()),
            lt: Some("z".into()),
            ..RangeArgs::default()
        };
        let keys = key_range(&range, false).unwrap_or_else(|_| panic!("a good range"));
        assert!(!keys.contains(b"n/1") && keys.contains(b"n/10") && keys.contains(b"n/9"));
        assert!(!keys.contains(b"n0") && !keys.contains(b"m"), "the prefix bounds stay");
    }
}
