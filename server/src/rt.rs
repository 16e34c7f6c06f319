//! The few runtime-specific calls, in one place: moving from async-std to smol (async-std is
//! discontinued upstream and runs on the smol crates) means editing this file.

use std::future::Future;
use std::time::Duration;

pub use async_std::io::timeout;
pub use async_std::net::{TcpListener, TcpStream};

/// Runs `future` as a detached task.
pub fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    async_std::task::spawn(future);
}

/// Waits for `duration`.
pub async fn sleep(duration: Duration) {
    async_std::task::sleep(duration).await;
}

/// Runs blocking work (file syncs, renames) off the executor threads.
pub async fn blocking<F, T>(work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    async_std::task::spawn_blocking(work).await
}

/// Drives `future` to completion on the current thread (the binary's entry point).
pub fn block_on<F: Future>(future: F) -> F::Output {
    async_std::task::block_on(future)
}
