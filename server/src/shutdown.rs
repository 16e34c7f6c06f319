//! Shutdown as a small type every task can await, and completion tracking.
//!
//! [`Shutdown`] is triggered once (SHUTDOWN, Ctrl-C, SIGTERM) and observed by everyone.
//! [`Tasks`] counts live connection tasks the mini-redis way: each holds a clone of a sender,
//! and the server waits for the channel to close when the last clone is dropped.

use async_channel::{Receiver, Sender};

/// A one-shot signal that the server is stopping.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Closed to trigger; never carries a value.
    tx: Sender<()>,
    /// Waited on: `recv` fails once `tx` is closed.
    rx: Receiver<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        Shutdown { tx, rx }
    }

    /// Fires the signal (idempotent; callable from any thread, e.g. a signal handler).
    pub fn trigger(&self) {
        self.tx.close();
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the signal fires.
    pub async fn wait(&self) {
        while self.rx.recv().await.is_ok() {}
    }
}

/// Tracks live tasks: hand a [`TaskGuard`] to each, then [`Tasks::wait`] for all to end.
#[derive(Debug)]
pub struct Tasks {
    /// Cloned into each guard.
    tx: Sender<()>,
    /// Closes when the last guard (and this struct's sender) is gone.
    rx: Receiver<()>,
}

/// Held by a live task; dropping it signals the task is done.
#[derive(Debug, Clone)]
pub struct TaskGuard {
    /// Only its lifetime matters.
    _tx: Sender<()>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    /// No tasks yet.
    pub fn new() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        Tasks { tx, rx }
    }

    /// A guard for one more task.
    pub fn guard(&self) -> TaskGuard {
        TaskGuard {
            _tx: self.tx.clone(),
        }
    }

    /// Waits until every guard handed out has been dropped.
    pub async fn wait(self) {
        let Tasks { tx, rx } = self;
        drop(tx);
        while rx.recv().await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_and_wait() {
        let s = Shutdown::new();
        let s2 = s.clone();
        assert!(!s.is_triggered());
        s2.trigger();
        assert!(s.is_triggered());
        futures::executor::block_on(s.wait());

        let tasks = Tasks::new();
        let g = tasks.guard();
        let t = std::thread::spawn(move || drop(g));
        futures::executor::block_on(tasks.wait());
        let _ = t.join();
    }
}
