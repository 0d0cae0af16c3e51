//! A client of the example server: write, read and iterate.
//!
//! Start `cargo run -p multilevel-tokio --example server`, then
//! `cargo run -p multilevel-tokio --example client`.

use futures_util::StreamExt;
use multilevel_tokio::{BatchOp, Client, ClientOptions, IterOptions, KeyRange};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::tcp("127.0.0.1:9000", ClientOptions::default());
    db.put("hello", "world").await?;
    println!("hello = {:?}", db.get("hello").await?);
    db.batch(vec![
        BatchOp::Put { key: "fruit/apple".into(), value: "red".into() },
        BatchOp::Put { key: "fruit/banana".into(), value: "yellow".into() },
        BatchOp::Del { key: "hello".into() },
    ])
    .await?;
    let range = KeyRange::all().gte("fruit/").lt("fruit0");
    let mut entries = db.iter(IterOptions { range, ..IterOptions::default() })?;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        println!("{:?} = {:?}", entry.key, entry.value);
    }
    Ok(())
}
