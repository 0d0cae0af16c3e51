//! A server: share the LMDB database in `./example-db` on 127.0.0.1:9000.
//!
//! `cargo run -p multilevel-blocking --example blocking_server`

use multilevel_blocking::Server;
use multilevel_store::{Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("example-db", StoreOptions::default())?;
    let listener = std::net::TcpListener::bind("127.0.0.1:9000")?;
    println!("serving example-db on {}", listener.local_addr()?);
    Server::new(store).serve_tcp(listener)?;
    Ok(())
}
