//! A client of the example server: write, read and iterate.
//!
//! Start `cargo run -p multilevel-blocking --example blocking_server`, then
//! `cargo run -p multilevel-blocking --example blocking_client`.

use multilevel_blocking::{Client, ClientOptions, IterOptions, KeyRange};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Client::tcp("127.0.0.1:9000", ClientOptions::default());
    db.put("hello", "world")?;
    println!("hello = {:?}", db.get("hello")?);
    db.batch().put("fruit/apple", "red").put("fruit/banana", "yellow").del("hello").write()?;
    let range = KeyRange::all().gte("fruit/").lt("fruit0");
    for entry in db.iter(IterOptions { range, ..IterOptions::default() })? {
        let entry = entry?;
        println!("{:?} = {:?}", entry.key, entry.value);
    }
    Ok(())
}
