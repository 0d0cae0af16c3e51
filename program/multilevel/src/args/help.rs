//! The long help texts: after `multilevel --help`, `get --help`, `import --help` and `export --help`.

/// Shown after `multilevel --help`.
pub(super) const AFTER_HELP: &str = "\
With no command, `multilevel` serves ./multilevel-data on 127.0.0.1:7481, like `multilevel serve`,
and takes the options of `multilevel serve --help`.

Each command takes its own options (`multilevel get --help`), after its name or before it:
`multilevel get KEY --addr HOST:PORT` or `multilevel --addr HOST:PORT get KEY`. Client commands
connect to --addr, else $MULTILEVEL_ADDR, else 127.0.0.1:7481 (--unix PATH: a Unix socket);
several addresses, comma-separated, are servers of one database: each is tried in turn, and a
command whose server dies carries on through the next. `serve` listens on --listen, else
$MULTILEVEL_LISTEN, else 127.0.0.1:7481; it never reads $MULTILEVEL_ADDR, so a client setting
cannot make a server bind a remote address. `serve --etcd URL,...` serves an etcd cluster
instead of a directory (a program built with the cargo feature `etcd`).

A client command whose connection is lost fails, unless it retries: --retry, the default of
scan, export and import (long transfers) and of several addresses, reconnects and carries on, a
scan or export resuming exactly after its last entry and a write applied at most once; --timeout
still bounds each request, reconnecting included. --no-retry turns it off.

--sublevel NAME (repeatable, to nest) makes a command work inside that sublevel: keys are given
and printed without its prefix (stored as !NAME!key, as abstract-level's sublevels).

Input: keys and values on the command line are UTF-8 text; with --hex they are hex (`put --hex 00ff
cafe`). `put KEY` without VALUE reads the value, as raw bytes, from stdin.

Output (--format):
  text  the bytes as UTF-8, with control characters and backslash escaped: \\t \\n \\r \\\\ and
        \\xNN for each byte of other control characters (C0, DEL, C1, bidirectional overrides)
        and of invalid UTF-8; a value can neither inject terminal escapes nor break lines
  hex   lowercase hex
  json  one JSON object per line, as in JSON lines below
  raw   (`get` only; also --raw) the value's exact bytes, no newline
`get` prints raw bytes when stdout is not a terminal (`get KEY > file` gives back exactly what
`put KEY < file` stored) and text when it is; --format chooses. `scan` prints `key<TAB>value`
lines; `mget` a line per key asked, a missing key as the key alone; `stats` `name value` lines.

JSON lines (import, export, --format json): one object per line,
  {\"key\":\"fruit/apple\",\"value\":\"red\"}
where a key or value is a JSON string when its bytes are valid UTF-8, and {\"hex\":\"...\"}
otherwise, so any bytes round-trip: {\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}.

Durations (--timeout) are like 10s, 500ms, 2m, 1h30m; a bare number is seconds.

Exit status: 0 on success; 1 on any error, and for `get` (or `mget`) of a missing key (nothing is
printed on stdout for `get`, `multilevel: not found: KEY` on stderr); 2 for a command-line
mistake (an unknown option, a malformed address or duration, bad hex...).";

/// Shown after `multilevel import --help` and `multilevel export --help`.
pub(super) const JSONL_HELP: &str = "\
JSON lines: one object per line, {\"key\": K, \"value\": V}, where K and V are JSON strings when the
bytes are valid UTF-8 and {\"hex\": \"...\"} objects otherwise, so any bytes round-trip:
  {\"key\":\"fruit/apple\",\"value\":\"red\"}
  {\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}
`export` writes exactly this (no spaces, keys in order); `import` accepts any JSON spacing, skips
blank lines, and stops at the first bad line, naming it. Progress shows on stderr when it is a
terminal; at the end a summary (`imported N entries`, `exported N entries`) goes to stderr.
`export FILE` writes a temporary file beside FILE and renames it over FILE only once the export
is complete, so a failed export leaves an earlier FILE as it was (a symbolic link's target is
replaced; what is not a regular file, such as /dev/stdout or a FIFO, is written in place).";

/// Shown after `multilevel get --help`.
pub(super) const GET_HELP: &str = "\
Output: raw bytes (no newline) when stdout is not a terminal, so `multilevel get KEY > file` gives
back exactly what `multilevel put KEY < file` stored; escaped text when stdout is a terminal.
--format (or --raw) chooses. A missing key prints nothing on stdout and exits with status 1.";

/// Shown after `multilevel watch --help`.
pub(super) const WATCH_HELP: &str = "\
Each line is one committed change: a put (with the new value) or a delete, in commit order. A
batch's changes share their position and come in batch order; a clear prints a delete per key it
removed. --format json prints {\"position\":P,\"index\":I,\"op\":\"put\",\"key\":K,\"value\":V,\"commit_end\":B}
per change. To carry on later without missing or repeating a change, pass the last position
printed to --from (the server keeps a bounded history; a position it no longer keeps fails,
naming the oldest one kept). Retry is on by default: across reconnects and server restarts the
watch resumes exactly where it stopped.";
