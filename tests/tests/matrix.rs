//! Every client adapter against every server adapter, with the same suite, including a
//! connection cut at random bytes by a proxy while iterating with retry on.

use multilevel_proto::ClientOptions;
use multilevel_store::StoreOptions;
use multilevel_tests::adapters::{ALL, Adapter, AnyClient, TestServer};

fn suite(server: Adapter, client: Adapter) {
    let running = TestServer::start(server, StoreOptions::default().no_sync(true));
    let db = AnyClient::connect(client, running.addr, ClientOptions::default());
    let pair = format!("{client:?} client / {server:?} server");

    multilevel_tests::suite::run(&db, client, running.addr, &pair);
}

#[test]
fn every_client_against_every_server() {
    for server in ALL {
        for client in ALL {
            suite(server, client);
        }
    }
}
