//! `multilevel watch`: prints the changes to a range as they are committed, one per line,
//! until interrupted (or after `--limit` of them).

use std::io::{self, Write};

use futures_util::StreamExt;
use multilevel_tokio::{Change, ChangeEvent, Error, ErrorKind, WatchOptions};

use crate::Failure;
use crate::args::Format;
use crate::connect::Connection;
use crate::encoding::write_field;
use crate::jsonl;

/// What `watch` was asked, checked before connecting.
pub(crate) struct WatchCommand {
    pub(crate) options: WatchOptions,
    pub(crate) format: Format,
    /// Stop after this many events.
    pub(crate) limit: Option<u64>,
}

impl WatchCommand {
    /// Prints events as they arrive, each line flushed at once so a pipe sees it. A watch
    /// from a trimmed position fails naming the oldest one kept.
    pub(crate) async fn run(self, db: &Connection) -> Result<(), Failure> {
        let values = self.options.values;
        let mut watch = db.db.watch(self.options).map_err(|err| db.failure(err))?;
        let mut out = io::stdout().lock();
        let mut printed = 0u64;
        while self.limit.is_none_or(|limit| printed < limit) {
            let Some(event) = watch.next().await else { return Ok(()) };
            let event = event.map_err(|err| watch_failure(db, err))?;
            write_event(&mut out, self.format, &event, values).and_then(|()| out.flush()).map_err(Failure::output)?;
            printed += 1;
        }
        Ok(())
    }
}

fn watch_failure(db: &Connection, err: Error) -> Failure {
    if err.kind() == ErrorKind::Compacted {
        return Failure::new(format!("{err}; `multilevel watch` without --from starts at the current position"));
    }
    db.failure(err)
}

/// One event: `POSITION<TAB>put<TAB>KEY<TAB>VALUE` or `POSITION<TAB>del<TAB>KEY` (keys and
/// values escaped text or hex; no value when `values` is off), or a JSON object with
/// `position`, `index`, `op`, `key`, `value` and `commit_end`.
pub(crate) fn write_event(out: &mut impl Write, format: Format, event: &ChangeEvent, values: bool) -> io::Result<()> {
    let (op, key, value) = match &event.change {
        Change::Put { key, value } => ("put", key, Some(value).filter(|_| values)),
        Change::Del { key } => ("del", key, None),
    };
    if format == Format::Json {
        write!(out, "{{\"position\":{},\"index\":{},\"op\":\"{op}\",\"key\":", event.position, event.index)?;
        jsonl::write_bytes(out, key)?;
        if let Some(value) = value {
            out.write_all(b",\"value\":")?;
            jsonl::write_bytes(out, value)?;
        }
        return writeln!(out, ",\"commit_end\":{}}}", event.commit_end);
    }
    write!(out, "{}\t{op}\t", event.position)?;
    write_field(out, format, key)?;
    if let Some(value) = value {
        out.write_all(b"\t")?;
        write_field(out, format, value)?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn events_print_as_text_hex_and_json_lines() {
        let put = ChangeEvent {
            position: 7,
            index: 0,
            commit_end: false,
            change: Change::Put { key: Bytes::from_static(b"k\t1"), value: Bytes::from_static(b"v") },
        };
        let del = ChangeEvent {
            position: 7,
            index: 1,
            commit_end: true,
            change: Change::Del { key: Bytes::from_static(&[0xff]) },
        };
        let print = |format| {
            let mut out = Vec::new();
            write_event(&mut out, format, &put, true).unwrap();
            write_event(&mut out, format, &del, true).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(print(Format::Text), "7\tput\tk\\t1\tv\n7\tdel\t\\xff\n");
        assert_eq!(print(Format::Hex), "7\tput\t6b0931\t76\n7\tdel\tff\n");
        assert_eq!(
            print(Format::Json),
            "{\"position\":7,\"index\":0,\"op\":\"put\",\"key\":\"k\\t1\",\"value\":\"v\",\"commit_end\":false}\n\
             {\"position\":7,\"index\":1,\"op\":\"del\",\"key\":{\"hex\":\"ff\"},\"commit_end\":true}\n"
        );
    }
}
