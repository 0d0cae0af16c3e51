//! A client with retry on: stop and restart the server while it runs, and it carries on
//! where it was, applying each write once.
//!
//! Start `cargo run -p multilevel-blocking --example blocking_server`, then
//! `cargo run -p multilevel-blocking --example blocking_reconnecting_client`, and restart the server.

use std::time::Duration;

use multilevel_blocking::{Client, ClientOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::tcp("127.0.0.1:9000", ClientOptions::default().retry(true));
    for i in 0u64.. {
        // Waits across a server restart; replayed at most once.
        db.put(format!("tick/{i:08}"), i.to_string())?;
        if i % 10 == 0 {
            println!("written {} ticks; connected: {}", i + 1, db.is_connected());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
