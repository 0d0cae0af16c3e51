//! The client commands: get, put, del, scan, stats, import and export.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use indicatif::{ProgressBar, ProgressStyle};
use multilevel_tokio::{BatchOp, IterOptions, KeyRange};
use tokio::sync::mpsc;

use crate::Failure;
use crate::args::{Format, ImportArgs, RangeArgs};
use crate::connect::Connection;
use crate::encoding::{parse_arg, text, write_entry};
use crate::jsonl;

/// Entries asked of an iterator at a time by `scan` and `export`.
const ITER_BATCH: usize = 1000;
/// Import batches sent before waiting for the first answer.
const IMPORT_IN_FLIGHT: usize = 8;
/// An import batch is sent early once its keys and values reach this many bytes, well below
/// the server's 16 MiB frame limit.
const IMPORT_BATCH_BYTES: usize = 4 << 20;

/// How command-line keys are read and entries printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// Keys and values on the command line are hex.
    pub(crate) hex: bool,
    /// The output format.
    pub(crate) format: Format,
}

/// Standard output, buffered.
fn stdout() -> BufWriter<io::Stdout> {
    BufWriter::new(io::stdout())
}

/// `get KEY`: prints the value; a missing key prints nothing and fails.
pub(crate) async fn get(db: &Connection, style: Style, key: &str) -> Result<(), Failure> {
    let key = parse_arg(key, style.hex, "KEY").map_err(Failure::new)?;
    let Some(value) = db.run(db.client.get(&key)).await? else {
        return Err(Failure::new(format!("not found: {}", shown(style, &key))));
    };
    let mut out = stdout();
    match style.format {
        Format::Json => write_entry(&mut out, Format::Json, Some(&key), Some(&value)),
        format => write_entry(&mut out, format, None, Some(&value)),
    }
    .and_then(|()| out.flush())
    .map_err(Failure::output)
}

/// A key as the user gave it, for messages.
fn shown(style: Style, key: &[u8]) -> String {
    if style.hex { hex::encode(key) } else { text(key) }
}

/// `put KEY [VALUE]`: sets the value, read raw from stdin when not given.
pub(crate) async fn put(db: &Connection, style: Style, key: &str, value: Option<&str>) -> Result<(), Failure> {
    let key = parse_arg(key, style.hex, "KEY").map_err(Failure::new)?;
    let value = match value {
        Some(value) => parse_arg(value, style.hex, "VALUE").map_err(Failure::new)?,
        None if io::stdin().is_terminal() => {
            return Err(Failure::new("put needs a VALUE, or the value piped on stdin"));
        }
        None => {
            let mut value = Vec::new();
            io::stdin().read_to_end(&mut value).map_err(|err| Failure::new(format!("reading stdin: {err}")))?;
            value
        }
    };
    db.run(db.client.put(key, value)).await
}

/// `del KEY`.
pub(crate) async fn del(db: &Connection, style: Style, key: &str) -> Result<(), Failure> {
    let key = parse_arg(key, style.hex, "KEY").map_err(Failure::new)?;
    db.run(db.client.del(key)).await
}

/// The iterator options for range flags.
fn iter_options(range: &RangeArgs, hex: bool, keys: bool, values: bool) -> Result<IterOptions, Failure> {
    let bound = |key: &Option<String>, flag: &str| {
        key.as_deref().map(|key| parse_arg(key, hex, flag)).transpose().map_err(Failure::new)
    };
    let mut keys_range = KeyRange::all();
    if let Some(key) = bound(&range.gt, "--gt")? {
        keys_range = keys_range.gt(key);
    }
    if let Some(key) = bound(&range.gte, "--gte")? {
        keys_range = keys_range.gte(key);
    }
    if let Some(key) = bound(&range.lt, "--lt")? {
        keys_range = keys_range.lt(key);
    }
    if let Some(key) = bound(&range.lte, "--lte")? {
        keys_range = keys_range.lte(key);
    }
    Ok(IterOptions { range: keys_range, reverse: range.reverse, limit: range.limit, keys, values })
}

/// Streams the entries of `options` into `write`, a batch at a time; returns how many.
async fn stream_entries(
    db: &Connection,
    options: IterOptions,
    progress: &ProgressBar,
    mut write: impl FnMut(Option<&[u8]>, Option<&[u8]>) -> io::Result<()>,
) -> Result<u64, Failure> {
    let mut iter = db.client.iter(options).map_err(|err| db.failure(err))?;
    let mut count = 0u64;
    loop {
        let batch = db.run(iter.next_batch(ITER_BATCH)).await?;
        if batch.is_empty() {
            return Ok(count);
        }
        for entry in &batch {
            write(entry.key.as_deref(), entry.value.as_deref()).map_err(Failure::output)?;
        }
        count += batch.len() as u64;
        progress.set_position(count);
    }
}

/// `scan`: prints the entries of a range.
pub(crate) async fn scan(
    db: &Connection,
    style: Style,
    range: &RangeArgs,
    keys_only: bool,
    values_only: bool,
) -> Result<(), Failure> {
    let options = iter_options(range, style.hex, !values_only, !keys_only)?;
    let mut out = stdout();
    stream_entries(db, options, &ProgressBar::hidden(), |key, value| write_entry(&mut out, style.format, key, value))
        .await?;
    out.flush().map_err(Failure::output)
}

/// `stats`: prints the server's counters, `name value` per line or one JSON object.
pub(crate) async fn stats(db: &Connection, style: Style) -> Result<(), Failure> {
    let stats = db.run(db.client.stats()).await?;
    let mut out = stdout();
    let written = if style.format == Format::Json {
        let object: serde_json::Map<String, serde_json::Value> =
            stats.into_iter().map(|(name, value)| (name, value.into())).collect();
        serde_json::to_writer(&mut out, &object).map_err(io::Error::from).and_then(|()| out.write_all(b"\n"))
    } else {
        stats.iter().try_for_each(|(name, value)| writeln!(out, "{name} {value}"))
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
            ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(&format!("{{spinner}} {{elapsed}} {{human_pos}} entries {what}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// `export [FILE]`: writes the entries of a range as JSON lines.
pub(crate) async fn export(db: &Connection, hex: bool, file: Option<&Path>, range: &RangeArgs) -> Result<(), Failure> {
    let options = iter_options(range, hex, true, true)?;
    let mut out: BufWriter<Box<dyn Write>> = match file.filter(|f| *f != Path::new("-")) {
        Some(path) => {
            let file =
                File::create(path).map_err(|err| Failure::new(format!("cannot create {}: {err}", path.display())))?;
            BufWriter::new(Box::new(file))
        }
        None => BufWriter::new(Box::new(io::stdout())),
    };
    let progress = progress(None, "exported");
    let count = stream_entries(db, options, &progress, |key, value| jsonl::write_entry(&mut out, key, value)).await;
    progress.finish_and_clear();
    let count = count?;
    out.flush().map_err(Failure::output)?;
    eprintln!("exported {}", entries(count));
    Ok(())
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
pub(crate) async fn import(db: &Connection, args: &ImportArgs) -> Result<(), Failure> {
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
                    let client = db.client.clone();
                    in_flight.push_back(async move {
                        db.run(client.batch(ops)).await.map(|()| (count, read))
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
