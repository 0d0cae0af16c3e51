//! What a session leaves on the server: a client that never replays (retry off, as a shell's
//! one-shot `multilevel put`) leaves no session record; a retrying one leaves one, so its
//! replays stay at most once.

use multilevel_proto::ClientOptions;
use multilevel_store::StoreOptions;
use multilevel_tests::adapters::{ALL, AnyClient, TestServer};

#[test]
fn only_sessions_that_can_replay_leave_a_record() {
    for adapter in ALL {
        let server = TestServer::start(adapter, StoreOptions::default());
        for i in 0..20 {
            let one_shot = AnyClient::connect(adapter, server.addr, ClientOptions::default());
            one_shot.put(format!("k{i}"), "v").unwrap();
            one_shot.batch(vec![multilevel_proto::BatchOp::Del { key: format!("k{i}").into() }]).unwrap();
        }
        let stats = server.store.stats().unwrap();
        assert_eq!(stats.sessions, 0, "{adapter:?}: one-shot clients left session records");
        assert_eq!(stats.writes, 40, "{adapter:?}: every write was applied");

        let retrying = AnyClient::connect(adapter, server.addr, ClientOptions::default().retry(true));
        retrying.put("r", "v").unwrap();
        assert_eq!(retrying.get("r").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(server.store.stats().unwrap().sessions, 1, "{adapter:?}: a retrying client keeps its record");
    }
}
