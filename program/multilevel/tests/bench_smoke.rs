//! `multilevel bench` keeps working: a quick run of every workload against the real binary.
//! No assertion on speed: figures are for the benchmark report, not for tests.

use multilevel::bench::{BenchConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_and_reports() {
    let config = BenchConfig { server_exe: env!("CARGO_BIN_EXE_multilevel").into(), ..BenchConfig::default() }.quick();
    let report = run(&config).await.expect("the bench runs");
    eprintln!("{}", report.to_text());
    assert!(report.figures.len() >= 10, "{} figures", report.figures.len());
    for figure in &report.figures {
        assert!(figure.per_sec > 0.0, "{} measured nothing", figure.name);
    }
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(json["figures"].as_array().map(Vec::len), Some(report.figures.len()));
}
