//! The suite on smol.

mod suite;

fn spawn(task: multilevel_async_std::Task) {
    smol::spawn(task).detach();
}

#[test]
fn operations() {
    smol::block_on(suite::operations(spawn));
}

#[test]
fn iterators() {
    smol::block_on(suite::iterators(spawn));
}

#[test]
fn pipelining() {
    smol::block_on(suite::pipelining(spawn));
}

#[test]
fn disconnect_and_resume() {
    smol::block_on(suite::disconnect_and_resume(spawn));
}

#[test]
fn graceful_shutdown() {
    smol::block_on(suite::graceful_shutdown(spawn));
}

#[test]
fn cross_adapters() {
    smol::block_on(suite::cross_adapters(spawn));
}
