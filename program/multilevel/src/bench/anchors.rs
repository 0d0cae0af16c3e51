//! The anchors that do not come from heed: the server child, a loopback ping-pong, and Redis.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::report::{Latencies, latencies, record};

/// The CPUs this process may run on (children inherit them).
pub(crate) fn placement() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Cpus_allowed_list:")).map(|l| l[18..].trim().to_owned()))
        .unwrap_or_else(|| "unknown".into())
}

/// A child process killed on drop.
pub(crate) struct ChildGuard(pub(crate) Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `exe serve dir --addr 127.0.0.1:0` and returns it with the address it printed.
pub(crate) fn start_server(exe: &Path, dir: &Path, no_sync: bool) -> io::Result<(ChildGuard, SocketAddr)> {
    let mut command = Command::new(exe);
    command.arg("serve").arg(dir).args(["--addr", "127.0.0.1:0"]);
    if no_sync {
        command.arg("--no-sync");
    }
    start_tcp_server(command)
}

/// Starts `command`, a `multilevel serve` listening on TCP, and returns it with the address
/// its banner names.
pub(crate) fn start_tcp_server(mut command: Command) -> io::Result<(ChildGuard, SocketAddr)> {
    command.env("RUST_LOG", "warn");
    let mut child = ChildGuard(command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?);
    let stdout = child.0.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected banner from the server: {line:?}")))?;
    Ok((child, addr))
}

/// Starts `exe serve dir --unix socket` and waits for its banner.
#[cfg(unix)]
pub(crate) fn start_unix_server(exe: &Path, dir: &Path, socket: &Path) -> io::Result<ChildGuard> {
    let mut command = Command::new(exe);
    command.arg("serve").arg(dir).arg("--unix").arg(socket).env("RUST_LOG", "warn");
    let mut child = ChildGuard(command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?);
    let stdout = child.0.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.contains("unix:") {
        return Err(io::Error::other(format!("unexpected banner from the server: {line:?}")));
    }
    Ok(child)
}

/// Resident memory of process `pid`, in KiB (Linux).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time process `pid` has used so far (user and system), from `/proc/PID/stat` (Linux;
/// its clock ticks are USER_HZ, 100 per second, so measure over a second or more).
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let (utime, stime): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some(Duration::from_millis((utime + stime) * 10))
}

/// MB/s of one loopback TCP stream carrying `bytes` in 64 KiB writes: the bandwidth an
/// iterator's batches could reach at most.
pub(crate) fn tcp_stream(bytes: u64) -> io::Result<f64> {
    const CHUNK: usize = 64 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut stream = TcpStream::connect(addr)?;
    let chunk = vec![7u8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        stream.write_all(&chunk)?;
        sent += CHUNK as u64;
    }
    drop(stream);
    let received = reader.join().map_err(|_| io::Error::other("the stream reader panicked"))??;
    Ok(received as f64 / 1e6 / start.elapsed().as_secs_f64().max(1e-9))
}

/// The same ping-pong as [`ping_pong`], over a Unix socket.
#[cfg(unix)]
pub(crate) fn unix_ping_pong(round_trips: u64, request: usize, response: usize) -> io::Result<Latencies> {
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = tempfile::Builder::new().prefix("multilevel-pingpong-").tempdir()?;
    let path = dir.path().join("sock");
    let listener = UnixListener::bind(&path)?;
    let server = std::thread::spawn(move || echo(listener.accept()?.0, request, response));
    let latencies = time_round_trips(UnixStream::connect(&path)?, round_trips, request, response);
    let _ = server.join();
    latencies
}

/// Round trips of `request` bytes out and `response` bytes back over loopback TCP with
/// `TCP_NODELAY`, on plain threads: the floor for one request in flight.
pub(crate) fn ping_pong(round_trips: u64, request: usize, response: usize) -> io::Result<Latencies> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        echo(stream, request, response)
    });
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let latencies = time_round_trips(stream, round_trips, request, response);
    let _ = server.join();
    latencies
}

/// The ping-pong's server side: answers every `request` bytes with `response` bytes until the
/// client leaves.
fn echo(mut stream: impl Read + Write, request: usize, response: usize) -> io::Result<()> {
    let (mut inbuf, outbuf) = (vec![0u8; request], vec![1u8; response]);
    while stream.read_exact(&mut inbuf).is_ok() {
        stream.write_all(&outbuf)?;
    }
    Ok(())
}

/// The ping-pong's client side: the latencies of `round_trips` round trips. The stream is closed
/// on return, which ends the server side.
fn time_round_trips(
    mut stream: impl Read + Write,
    round_trips: u64,
    request: usize,
    response: usize,
) -> io::Result<Latencies> {
    let (outbuf, mut inbuf) = (vec![2u8; request], vec![0u8; response]);
    let mut round_trip_latencies = latencies();
    for _ in 0..round_trips {
        let t = Instant::now();
        stream.write_all(&outbuf)?;
        stream.read_exact(&mut inbuf)?;
        record(&mut round_trip_latencies, t.elapsed());
    }
    Ok(round_trip_latencies)
}

/// Whether `name` is on the `PATH`.
fn installed(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// A Redis server for the run, when Redis is installed.
pub(crate) struct Redis {
    server: ChildGuard,
    port: u16,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port with persistence off, if installed.
    pub(crate) fn start() -> Option<Self> {
        if !installed("redis-server") || !installed("redis-benchmark") {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = ChildGuard(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { server, port })
    }

    /// The `redis-server` process id, to read its CPU time.
    pub(crate) fn pid(&self) -> u32 {
        self.server.0.id()
    }

    /// `redis-benchmark -t test -n ops -c clients -P pipeline -d value_size`: requests per
    /// second and p50 in microseconds.
    pub(crate) fn bench(
        &self,
        test: &str,
        ops: u64,
        clients: usize,
        pipeline: usize,
        value_size: usize,
        keys: u64,
    ) -> Option<(f64, f64)> {
        let output = Command::new("redis-benchmark")
            .args(["-p", &self.port.to_string(), "-t", test, "-n", &ops.to_string(), "-c", &clients.to_string()])
            .args(["-P", &pipeline.to_string(), "-d", &value_size.to_string(), "-r", &keys.to_string(), "--csv"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
        let row =
            text.lines().find(|l| l.to_ascii_uppercase().starts_with(&format!("\"{}\"", test.to_ascii_uppercase())))?;
        let fields: Vec<f64> = row.split(',').skip(1).filter_map(|f| f.trim_matches('"').parse().ok()).collect();
        Some((*fields.first()?, fields.get(3).copied().unwrap_or(0.0) * 1000.0))
    }
}
