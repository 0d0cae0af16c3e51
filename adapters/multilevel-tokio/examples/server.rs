//! A server: share the LMDB database in `./example-db` on 127.0.0.1:9000, until Ctrl-C.
//!
//! `cargo run -p multilevel-tokio --example server`

use std::time::Duration;

use multilevel_store::{Store, StoreOptions};
use multilevel_tokio::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("example-db", StoreOptions::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    println!("serving example-db on {}", listener.local_addr()?);
    let server = Server::new(store);
    let serving = server.clone();
    let accept = tokio::spawn(async move { serving.serve_tcp(listener).await });

    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    // Stop accepting; each connection finishes its in-flight requests, says goodbye and closes.
    server.shutdown();
    accept.await??;
    if tokio::time::timeout(Duration::from_secs(5), server.closed()).await.is_err() {
        println!("{} connection(s) still open; exiting anyway", server.connections());
    }
    Ok(())
}
