//! Replays the committed corpus (`fuzz/corpus/<target>/*`, seeds and saved crash inputs)
//! through the target functions, without libFuzzer:
//!
//! ```text
//! cargo test --manifest-path fuzz/Cargo.toml
//! GENERATE_SEEDS=1 cargo test --manifest-path fuzz/Cargo.toml   # rewrite corpus/*/seed-*
//! ```

use std::path::Path;

use multilevel_fuzz::seeds;

const TARGETS: [&str; 4] = ["frame_decoder", "server_input", "client_input", "model"];

fn replay(dir: &Path, target: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else { return 0 };
    let mut paths: Vec<_> = entries.map(|e| e.expect("readable dir").path()).collect();
    paths.sort();
    for path in &paths {
        let data = std::fs::read(path).expect("readable input");
        eprintln!("{}", path.display());
        seeds::run_target(target, &data);
    }
    paths.len()
}

#[test]
fn seeds_are_current_and_pass() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in seeds::all() {
        let path = corpus.join(target).join(format!("seed-{name}"));
        if std::env::var_os("GENERATE_SEEDS").is_some() {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write seed");
        }
    }
    for (target, name, bytes) in seeds::all() {
        let path = corpus.join(target).join(format!("seed-{name}"));
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(on_disk == bytes, "{} is stale: run with GENERATE_SEEDS=1", path.display());
        eprintln!("{}", path.display());
        seeds::run_target(target, &bytes);
    }
}

#[test]
fn corpus_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in TARGETS {
        let n = replay(&root.join("corpus"), target);
        eprintln!("{target}: {n} inputs");
    }
    print_model_stats();
}

/// Replays one file (e.g. a crash) or every file of a directory without libFuzzer, with prints
/// and a debugger at hand:
/// `FUZZ_TARGET=server_input FUZZ_INPUT=artifacts/server_input/crash-… cargo test replay_one -- --nocapture`
#[test]
fn replay_one() {
    let (Some(target), Some(input)) = (std::env::var_os("FUZZ_TARGET"), std::env::var_os("FUZZ_INPUT")) else {
        return;
    };
    let target = target.to_str().expect("utf-8 target");
    let input = Path::new(&input);
    if input.is_dir() {
        let n = replay(input.parent().expect("a parent"), input.file_name().and_then(|n| n.to_str()).expect("name"));
        eprintln!("{n} inputs");
    } else {
        let data = std::fs::read(input).expect("readable FUZZ_INPUT");
        seeds::run_target(target, &data);
    }
    print_model_stats();
}

fn print_model_stats() {
    let stats: Vec<usize> =
        multilevel_fuzz::model::STATS.iter().map(|s| s.load(std::sync::atomic::Ordering::Relaxed)).collect();
    eprintln!(
        "model: {} cases, {} with a cut, {} iterators checked, {} skipped (several snapshots), {} reads checked, \
         {} watch events checked",
        stats[0], stats[1], stats[2], stats[3], stats[4], stats[5]
    );
}
