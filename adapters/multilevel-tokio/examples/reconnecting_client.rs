//! A client with retry on: stop and restart the server while it runs, and it carries on
//! where it was, applying each write once.
//!
//! Start `cargo run -p multilevel-tokio --example server`, then
//! `cargo run -p multilevel-tokio --example reconnecting_client`, and restart the server.

use std::time::Duration;

use multilevel_tokio::{Client, ClientOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::tcp("127.0.0.1:9000", ClientOptions::default().retry(true));

    // Show each change of the connection state as it happens.
    let mut state = db.watch_state();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            println!("connection: {:?}", *state.borrow_and_update());
        }
    });

    for i in 0u64.. {
        // Waits across a server restart; replayed at most once.
        db.put(format!("tick/{i:08}"), i.to_string()).await?;
        if i.is_multiple_of(10) {
            println!("written {} ticks", i + 1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
