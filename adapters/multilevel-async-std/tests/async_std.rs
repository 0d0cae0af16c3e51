//! The suite on async-std (discontinued upstream, still widely deployed).

mod suite;

fn spawn(task: multilevel_async_std::Task) {
    async_std::task::spawn(task);
}

#[async_std::test]
async fn operations() {
    suite::operations(spawn).await;
}

#[async_std::test]
async fn iterators() {
    suite::iterators(spawn).await;
}

#[async_std::test]
async fn pipelining() {
    suite::pipelining(spawn).await;
}

#[async_std::test]
async fn disconnect_and_resume() {
    suite::disconnect_and_resume(spawn).await;
}

#[async_std::test]
async fn graceful_shutdown() {
    suite::graceful_shutdown(spawn).await;
}

#[async_std::test]
async fn cross_adapters() {
    suite::cross_adapters(spawn).await;
}
