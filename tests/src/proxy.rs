//! A loopback proxy that cuts each connection after a random number of bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
#[derive(Debug, Clone)]
pub struct CuttingProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
    /// Bytes relayed so far.
    pub bytes: Arc<AtomicU64>,
}

impl CuttingProxy {
    /// Starts a proxy to `upstream` on the shared tokio runtime. Each connection is cut after
    /// a log-uniform number of bytes between 2^`min_log2` and 2^`max_log2`.
    pub fn start(upstream: SocketAddr, seed: u64, min_log2: f64, max_log2: f64) -> Self {
        crate::adapters::runtime().block_on(Self::spawn(upstream, seed, min_log2, max_log2))
    }

    /// Starts the same proxy on the current tokio runtime (e.g. a `#[tokio::test]`'s).
    pub async fn spawn(upstream: SocketAddr, seed: u64, min_log2: f64, max_log2: f64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let proxy = Self { addr, cuts: Arc::default(), bytes: Arc::default() };
        let state = proxy.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let budget = (2f64.powf(rng.random_range(min_log2..max_log2)) as u64).max(1);
                let state = state.clone();
                tokio::spawn(async move {
                    if relay(client, server, budget, &state.bytes).await {
                        state.cuts.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        proxy
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

/// Copies both ways until `budget` bytes passed (a cut: both sides dropped) or a side closed.
async fn relay(client: TcpStream, server: TcpStream, mut budget: u64, total: &AtomicU64) -> bool {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let (n, to_server) = tokio::select! {
            r = cr.read(&mut up) => (r.unwrap_or(0), true),
            r = sr.read(&mut down) => (r.unwrap_or(0), false),
        };
        if n == 0 {
            return false;
        }
        let sent = (n as u64).min(budget) as usize;
        let ok = if to_server { sw.write_all(&up[..sent]).await } else { cw.write_all(&down[..sent]).await };
        total.fetch_add(sent as u64, Ordering::Relaxed);
        budget -= sent as u64;
        if ok.is_err() {
            return false;
        }
        if budget == 0 {
            return true;
        }
    }
}
