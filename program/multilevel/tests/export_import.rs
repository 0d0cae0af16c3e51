//! `export` and `import` of JSON lines, end to end: a round trip of any bytes, and an export
//! that replaces its file only once complete.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

mod support;

#[test]
fn export_import_round_trip() {
    let first = ServerProcess::tcp();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    // Awkward keys and values, out of order; `late` is written twice and the second one wins.
    let mut input = String::from(
        "{\"key\":\"late\",\"value\":\"first\"}\n\
         \n\
         { \"value\": {\"hex\": \"00FF10\"}, \"key\": {\"hex\": \"ff\"} }\n\
         {\"key\":\"\",\"value\":\"the empty key\"}\n\
         {\"key\":\"quote\\\"back\\\\slash\\nnewline\",\"value\":\"é ✓ \\u0000\"}\n",
    );
    // Enough entries for several batches in flight.
    for i in 0..2500 {
        input.push_str(&format!("{{\"key\":\"n/{i:05}\",\"value\":\"{i}\"}}\n"));
    }
    input.push_str("{\"key\":\"late\",\"value\":\"second\"}\n");
    std::fs::write(path("input.jsonl"), &input).unwrap();
    let imported = first.run(&["import", &path("input.jsonl"), "--batch-size", "100"]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(stderr(&imported), "imported 2505 entries\n");

    assert_eq!(first.ok(&["export", &path("one.jsonl")]), "");
    let exported = std::fs::read_to_string(path("one.jsonl")).unwrap();
    let mut expected = String::from(
        "{\"key\":\"\",\"value\":\"the empty key\"}\n\
         {\"key\":\"late\",\"value\":\"second\"}\n",
    );
    for i in 0..2500 {
        expected.push_str(&format!("{{\"key\":\"n/{i:05}\",\"value\":\"{i}\"}}\n"));
    }
    expected.push_str("{\"key\":\"quote\\\"back\\\\slash\\nnewline\",\"value\":\"é ✓ \\u0000\"}\n");
    expected.push_str("{\"key\":{\"hex\":\"ff\"},\"value\":{\"hex\":\"00ff10\"}}\n");
    assert_eq!(exported, expected);
    assert_eq!(first.ok(&["export", "-"]), expected, "export to stdout writes the same");
    assert_eq!(first.ok(&["export"]), expected);

    // Into a fresh server, and out again: the same bytes.
    let second = ServerProcess::tcp();
    let imported = second.run(&["import", &path("one.jsonl")]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(second.ok(&["export", &path("two.jsonl")]), "");
    assert_eq!(std::fs::read(path("two.jsonl")).unwrap(), exported.as_bytes());

    // Export takes the range flags of scan.
    assert_eq!(
        second.ok(&["export", "--gte", "n/00010", "--lt", "n/00013", "--reverse"]),
        "{\"key\":\"n/00012\",\"value\":\"12\"}\n\
         {\"key\":\"n/00011\",\"value\":\"11\"}\n\
         {\"key\":\"n/00010\",\"value\":\"10\"}\n"
    );
    assert_eq!(second.ok(&["export", "--limit", "1"]), "{\"key\":\"\",\"value\":\"the empty key\"}\n");

    // A bad line stops the import and is named.
    let bad = second.run_with_stdin(&["import", "-"], Some(b"{\"key\":\"x\",\"value\":\"1\"}\n{\"key\":\"y\"}\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("stdin, line 2: missing \"value\""), "{}", stderr(&bad));
}

#[test]
fn export_replaces_the_file_only_when_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.jsonl");
    let previous = "{\"key\":\"old\",\"value\":\"dump\"}\n";
    std::fs::write(&path, previous).unwrap();
    let path_arg = path.display().to_string();

    // A server that cannot be reached.
    let nobody = refused_addr();
    let output = program().args(["export", &path_arg, "--addr", &nobody]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), previous);

    // A server that stops answering in the middle of the export.
    let server = ServerProcess::tcp();
    let mut lines = String::new();
    let value = "v".repeat(2000);
    for i in 0..20_000 {
        lines.push_str(&format!("{{\"key\":\"k{i:06}\",\"value\":\"{value}\"}}\n"));
    }
    let imported = server.run_with_stdin(&["import"], Some(lines.as_bytes()));
    assert!(imported.status.success(), "{}", stderr(&imported));
    // Freeze the server as soon as the export has begun writing its temporary file. On a
    // machine slow enough for the export to finish first, try again.
    let pid = server.child.id().to_string();
    let mut attempts = 0;
    let message = loop {
        attempts += 1;
        std::fs::write(&path, previous).unwrap();
        let mut export = program()
            .args(["export", &path_arg, "--addr", &server.addr, "--timeout", "2s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let begun = loop {
            let temp = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).any(|entry| {
                entry.file_name().to_string_lossy().starts_with(".dump.jsonl.")
                    && entry.metadata().is_ok_and(|m| m.len() > 0)
            });
            if temp || start.elapsed() > Duration::from_secs(30) || export.try_wait().unwrap().is_some() {
                break temp;
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        let status = wait_within(&mut export, DEADLINE);
        assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
        let status = status.expect("the export gives up within its timeout");
        let mut message = String::new();
        export.stderr.take().unwrap().read_to_string(&mut message).unwrap();
        if status.success() && attempts < 3 {
            continue; // it finished before the freeze
        }
        assert!(begun, "the export never wrote a temporary file beside the dump: {message}");
        assert_eq!(status.code(), Some(1), "the export should have failed: {message}");
        break message;
    };
    assert!(message.contains("did not answer within 2s"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), previous, "the previous dump is intact");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("dump.jsonl")], "no temporary file is left behind");

    // A complete export replaces it.
    let output = program().args(["export", &path_arg, "--addr", &server.addr, "--prefix", "k01999"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let dump = std::fs::read_to_string(&path).unwrap();
    assert_eq!(dump.lines().count(), 10, "k019990..k019999");
    assert!(dump.starts_with("{\"key\":\"k019990\""), "{}", &dump[..40]);

    // Through a symbolic link: the file it points at is replaced, the link stays a link.
    #[cfg(unix)]
    {
        let link = dir.path().join("latest.jsonl");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let link_arg = link.display().to_string();
        let output =
            program().args(["export", &link_arg, "--addr", &server.addr, "--prefix", "k00001"]).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10, "k000010..k000019");
    }
    // Something that is not a regular file is written in place.
    let output =
        program().args(["export", "/dev/stdout", "--addr", &server.addr, "--prefix", "k00000"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 10);
    // A directory is refused before anything is read.
    let output =
        program().args(["export", &dir.path().display().to_string(), "--addr", &server.addr]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("it is a directory"), "{}", stderr(&output));
}
