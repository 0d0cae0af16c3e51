//! The settings of one server connection.

use std::time::Duration;

/// Settings of one server connection.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted from a client. Default 16 MiB.
    pub max_frame: u32,
    /// Largest key accepted; announced in the handshake. Default 64 KiB; the LMDB store
    /// lowers it to what LMDB accepts.
    pub max_key_size: u32,
    /// Requests worked on at once per connection; past it the connection stops reading.
    /// Default 256.
    pub max_in_flight: u32,
    /// Iterators open at once per connection. Default 64.
    pub max_iterators: u32,
    /// Refuse every write with a read-only error. Default off.
    pub readonly: bool,
    /// Tokens a client must present (with their roles); `None` lets everyone in. Default
    /// `None`.
    pub tokens: Option<std::sync::Arc<crate::auth::Tokens>>,
    /// Close a connection that sent nothing for this long (clients ping well within it).
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Stop reading requests and iterator batches while this many bytes wait to be sent;
    /// also about the most an adapter writes at once. Default 256 KiB: enough to batch many
    /// frames per write, small enough that a client that stops reading holds little.
    pub output_high_water: usize,
    /// Most bytes of entries asked of the store per iterator batch, and so about the largest
    /// iterator frame. Default 64 KiB: large enough for throughput, small enough that a frame
    /// does not hold up other answers for long or need a long-lived connection to get through.
    pub max_batch_bytes: u64,
    /// Most entries asked of the store per iterator batch. Default 4096.
    pub max_batch_entries: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_key_size: 64 << 10,
            max_in_flight: 256,
            max_iterators: 64,
            readonly: false,
            tokens: None,
            idle_timeout: Duration::from_secs(60),
            output_high_water: 256 << 10,
            max_batch_bytes: 64 << 10,
            max_batch_entries: 4096,
        }
    }
}
