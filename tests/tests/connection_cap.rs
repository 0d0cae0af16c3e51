//! Each server's connection cap: the connection past it gets a `TooManyConnections` goodbye
//! and the others keep working (the TLS and many-level paths: `multilevel-tokio`'s tests).

use multilevel_tests::adapters::Adapter;
use multilevel_tests::suite::connection_cap;

#[test]
fn the_blocking_server_refuses_past_its_cap_with_a_goodbye() {
    connection_cap(Adapter::Blocking);
}

#[test]
fn the_tokio_server_refuses_past_its_cap_with_a_goodbye() {
    connection_cap(Adapter::Tokio);
}

#[test]
fn the_smol_server_refuses_past_its_cap_with_a_goodbye() {
    connection_cap(Adapter::Smol);
}
