//! End-to-end test support: the real `chat-server` binary over real sockets.
//!
//! * [`bin`] finds (and if needed builds) the workspace's binaries next to the test executable.
//! * [`Server`] spawns `chat-server` on an ephemeral port with a fresh data directory, drains
//!   its log output on a thread, and hands back the addresses it announced.
//! * [`Client`] is a blocking TCP client in either framing whose every read (and write) has a
//!   deadline: a test that waits for something that never comes fails with what it expected
//!   and what it had received, instead of hanging.
//! * [`both_framings!`] runs one behaviour test once per framing.
//! * [`Redis`] runs a `redis-server` for the cluster tests (several servers on one Redis),
//!   which can be stopped, killed and restarted on the same port and data.
//!
//! Tests read like the seeds' example sessions: a client says X, the server answers Y.

mod binaries;
mod client;
mod redis;
mod server;
mod tempdir;
pub mod tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use binaries::bin;
pub use client::{Client, RecvError};
pub use protocol::Framing;
pub use redis::Redis;
#[cfg(any(target_os = "linux", windows))]
pub use server::rss_kib;
pub use server::{Options, Server};
pub use tempdir::TempDir;

/// How many times longer a timing bound may be on Windows than on Unix. The Windows check
/// runs these tests under Wine, where every socket call goes through the `wineserver` process
/// and a process takes a second or more to start: what a bound measures there is mostly the
/// emulation. Only bounds scale; what the tests assert does not change.
pub const TIME_FACTOR: u32 = if cfg!(windows) { 3 } else { 1 };

/// How long a single expected message (or process event) may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5 * TIME_FACTOR as u64);

/// Runs a behaviour test `fn name(framing: Framing)` once per framing, as the tests
/// `name::line` and `name::framed`.
#[macro_export]
macro_rules! both_framings {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn line() {
                    super::$name($crate::Framing::Line)
                }
                #[test]
                fn framed() {
                    super::$name($crate::Framing::Framed)
                }
            }
        )*
    };
}

/// The other framing (tests that mix both on one server).
pub fn other(framing: Framing) -> Framing {
    match framing {
        Framing::Line => Framing::Framed,
        Framing::Framed => Framing::Line,
    }
}

/// A name no other test in this process uses (`prefix` + a counter).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Locks a mutex, also after a panicking test poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
