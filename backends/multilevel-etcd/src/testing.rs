//! A throwaway 3-member etcd cluster on loopback, for tests (feature `testing`).
//!
//! [`EtcdCluster::start`] runs the `etcd` binary (or `$ETCD_BIN`) three times as child
//! processes, on free loopback ports, with data directories in a temporary directory (in
//! `/dev/shm` when there is one), and waits until the cluster accepts a put. Dropping it
//! SIGKILLs every member and removes the directories.
//!
//! Without an `etcd` binary, `start` prints a notice and returns `None` so the test can skip,
//! unless the environment variable `CI` is set: then it panics, so a CI run cannot pass by
//! skipping the etcd tests.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster may take to accept its first put.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One member of an [`EtcdCluster`].
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    process: Option<Child>,
}

/// A running 3-member etcd cluster; killed and removed on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    extra_args: Vec<String>,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

/// The `etcd` binary to run, if there is one.
fn binary() -> Option<PathBuf> {
    let binary = std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from);
    let found = Command::new(&binary).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    found.is_ok_and(|status| status.success()).then_some(binary)
}

fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("a bound address").port()).collect()
}

impl EtcdCluster {
    /// Starts a cluster with etcd's default limits; `None` if `etcd` is missing (and `CI` is
    /// unset). See the [module docs](self).
    pub fn start() -> Option<EtcdCluster> {
        Self::start_with(&[])
    }

    /// Starts a cluster whose members also get `extra_args` (e.g. `--max-txn-ops=16`).
    pub fn start_with(extra_args: &[&str]) -> Option<EtcdCluster> {
        let Some(binary) = binary() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "the etcd binary is missing and CI is set: the etcd tests must run in CI \
                     (apt-get install -y --no-install-recommends etcd-server, or set ETCD_BIN)"
                );
            }
            eprintln!(
                "NOTICE: skipping an etcd test: no etcd binary (apt-get install etcd-server, or set ETCD_BIN); in CI \
                 this would fail"
            );
            return None;
        };
        let base = std::path::Path::new("/dev/shm");
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("multilevel-etcd-");
            b
        };
        let dir = if base.is_dir() { builder.tempdir_in(base) } else { builder.tempdir() }
            .expect("create a temporary directory for etcd");
        let ports = free_ports(6);
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("n{}", i + 1),
                client_url: format!("http://127.0.0.1:{}", ports[2 * i]),
                peer_url: format!("http://127.0.0.1:{}", ports[2 * i + 1]),
                process: None,
            })
            .collect();
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            binary,
            dir,
        };
        for i in 0..3 {
            cluster.spawn(i, "new");
        }
        cluster.wait_ready();
        Some(cluster)
    }

    fn spawn(&mut self, index: usize, state: &str) {
        let member = &self.members[index];
        let data = self.dir.path().join(&member.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", member.name)))
            .expect("open an etcd log file");
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &member.client_url, "--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url, "--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-token", "multilevel-test"])
            .args(["--initial-cluster-state", state, "--logger", "zap", "--log-level", "warn"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a file handle"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[index].process = Some(child);
    }

    /// Waits until a put through any member succeeds.
    fn wait_ready(&self) {
        let endpoints = self.endpoints();
        let ready = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let started = Instant::now();
            runtime.block_on(async {
                loop {
                    let options = etcd_client::ConnectOptions::new()
                        .with_timeout(Duration::from_secs(2))
                        .with_connect_timeout(Duration::from_millis(500));
                    if let Ok(mut client) = etcd_client::Client::connect(&endpoints, Some(options)).await
                        && client.put("multilevel-test-ready", "1", None).await.is_ok()
                    {
                        return Ok(started.elapsed());
                    }
                    if started.elapsed() > START_TIMEOUT {
                        return Err(());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        });
        match ready.join().expect("the readiness check panicked") {
            Ok(took) => eprintln!("etcd cluster ready in {took:?} at {}", self.endpoints().join(",")),
            Err(()) => {
                panic!("the etcd cluster did not accept a put within {START_TIMEOUT:?}; logs in {:?}", self.dir.path())
            }
        }
    }

    /// The members' client URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The index of the member that leads now, if a running member knows one.
    pub fn leader(&self) -> Option<usize> {
        let endpoints = self.endpoints();
        let running: Vec<bool> = self.members.iter().map(|m| m.process.is_some()).collect();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                let mut ids = Vec::new();
                let mut leader = None;
                for (i, endpoint) in endpoints.iter().enumerate() {
                    let options = etcd_client::ConnectOptions::new()
                        .with_timeout(Duration::from_secs(2))
                        .with_connect_timeout(Duration::from_millis(500));
                    if !running[i] {
                        ids.push(None);
                        continue;
                    }
                    let Ok(mut client) = etcd_client::Client::connect([endpoint], Some(options)).await else {
                        ids.push(None);
                        continue;
                    };
                    match client.status().await {
                        Ok(status) => {
                            ids.push(status.header().map(|h| h.member_id()));
                            if status.leader() != 0 {
                                leader = Some(status.leader());
                            }
                        }
                        Err(_) => ids.push(None),
                    }
                }
                leader.and_then(|leader| ids.iter().position(|id| *id == Some(leader)))
            })
        })
        .join()
        .expect("the status check panicked")
    }

    /// SIGKILLs member `index` (0, 1 or 2).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts a killed member on its data directory; it rejoins the cluster.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        self.spawn(index, "existing");
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
