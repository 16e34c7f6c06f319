//! Tests: a private `redis-server` on a free loopback port, in a temporary directory, with
//! the durability the cluster asks for; stopped (by its own process id) when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Link;

/// How long a test waits for Redis (or the link) to come up.
const START_TIME: Duration = Duration::from_secs(10);

/// A running `redis-server` of a test's own.
pub struct TestRedis {
    /// The server process; `None` once stopped.
    child: Mutex<Option<Child>>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its data directory, removed on drop.
    dir: PathBuf,
}

impl TestRedis {
    /// Starts one, or `None` (with a message) when `redis-server` is not installed: the
    /// test is then skipped.
    pub fn start() -> Option<TestRedis> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!(
                    "SKIPPED: cannot start redis-server ({e}); install Redis to run this test"
                );
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
        };
        let redis = TestRedis {
            child: Mutex::new(Some(child)),
            port,
            dir,
        };
        let deadline = Instant::now() + START_TIME;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    /// Its `redis://` address.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A link to it, connected (its reconnect task runs until the test ends).
    pub async fn link(&self) -> Arc<Link> {
        let link = Link::new(&self.url()).expect("a valid url");
        crate::rt::spawn(link.clone().run(|| {}));
        let deadline = Instant::now() + START_TIME;
        while !link.is_up() {
            assert!(Instant::now() < deadline, "the link did not connect");
            crate::rt::sleep(Duration::from_millis(10)).await;
        }
        link
    }

    /// A fresh directory for a node's own data, removed with this server's.
    pub fn node_dir(&self, tag: &str) -> PathBuf {
        let dir = self.dir.join(tag);
        std::fs::create_dir_all(&dir).expect("node dir");
        dir
    }

    /// Stops the server now (kills it by its process id, and waits for it).
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
