//! The few runtime-specific calls, in one place: moving from async-std to smol (async-std is
//! discontinued upstream and runs on the smol crates) means editing this file.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::io::AsyncWrite;

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

/// Lets the other tasks run before this one goes on.
pub async fn yield_now() {
    async_std::task::yield_now().await;
}

/// Runs blocking work (file syncs, renames) off the executor threads.
pub async fn blocking<F, T>(work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    async_std::task::spawn_blocking(work).await
}

/// Runs `future` on the executor and waits for it without taking part: the executor's own
/// threads then also drive the reactor, so a single-threaded server never hands an event
/// from one thread to another.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    async_std::task::spawn(async move {
        let _ = tx.send(future.await);
    });
    match rx.recv() {
        Ok(output) => output,
        // The task panicked; the panic has been reported on its thread.
        Err(_) => std::process::exit(101),
    }
}

/// Waits up to `limit` for `future` on the calling thread, which must not be one of the
/// executor's (a thread of its own, such as a hashing thread); `None` when time ran out.
pub fn wait_here<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    async_std::task::block_on(async_std::future::timeout(limit, future)).ok()
}

/// Writes what the socket takes right now, without waiting: `WouldBlock` when it takes
/// nothing. (The socket is non-blocking; the runtime's write tries the system call first and
/// only registers interest when it would block, which a no-op waker makes harmless.)
pub fn try_write(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut stream = stream;
    match Pin::new(&mut stream).poll_write(&mut cx, bytes) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// [`try_write`] of several slices in one system call.
pub fn try_write_vectored(stream: &TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut stream = stream;
    match Pin::new(&mut stream).poll_write_vectored(&mut cx, bufs) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// Sets how many threads run tasks; must be called before any other call in this module.
pub fn set_threads(threads: usize) {
    if std::env::var_os("ASYNC_STD_THREAD_COUNT").is_none() {
        std::env::set_var("ASYNC_STD_THREAD_COUNT", threads.max(1).to_string());
    }
}
