//! The newcomer lane: heavy work gives way while a new connection waits to be accepted.
//!
//! All tasks share one queue, first come first served, and a task that is woken joins its
//! end. Under a flood of broadcasts to thousands of clients each turn of a broadcaster (or
//! of the flusher) costs milliseconds, so a listener whose connection arrived just after the
//! queue filled up waits for every such turn ahead of it. The accept loop therefore polls
//! its listener through a [`Watcher`], which raises a flag when the listener's wake-up
//! comes in; a task about to start a heavy turn looks at the flag with [`Lane::waiting`]
//! and, when it is up, goes to the back of the queue once more, behind the accept loop.
//! The accept loop lowers the flag as soon as it runs, and a heavy task gives way at most
//! once per turn, so heavy work is delayed by one accept at most, never starved.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The flag that says the accept loop has been woken and has not run yet.
#[derive(Debug, Default)]
pub struct Lane {
    /// Up from the listener's wake-up until the accept loop runs.
    waiting: AtomicBool,
}

impl Lane {
    /// A lane with nobody waiting.
    pub fn new() -> Arc<Lane> {
        Arc::new(Lane::default())
    }

    /// Whether a new connection waits for the accept loop's turn: heavy work should let it
    /// go first.
    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A watcher for the accept loop: the futures it polls raise the flag when woken.
    pub fn watcher(self: &Arc<Self>) -> Watcher {
        Watcher {
            lane: self.clone(),
            wakers: None,
        }
    }
}

/// What the accept loop polls its listener through; see [`Lane::watcher`].
#[derive(Debug)]
pub struct Watcher {
    /// The lane whose flag a wake-up raises.
    lane: Arc<Lane>,
    /// The task's own waker and the one handed out for it, kept so that the reactor sees
    /// the same waker on every poll (a new one would make it wake the old one).
    wakers: Option<(Waker, Waker)>,
}

impl Watcher {
    /// `future` (the listener's accept), polled so that its wake-up raises the flag.
    pub fn watch<F: Future + Unpin>(&mut self, future: F) -> Watched<'_, F> {
        Watched {
            watcher: self,
            future,
        }
    }
}

/// A future whose wake-up raises the lane's flag; see [`Watcher::watch`].
#[derive(Debug)]
pub struct Watched<'a, F> {
    /// Where the flag and the waker are.
    watcher: &'a mut Watcher,
    /// The listener's accept.
    future: F,
}

/// Raises the flag, then wakes the task.
struct Raise {
    /// The lane whose flag it raises.
    lane: Arc<Lane>,
    /// The accept loop's own waker.
    task: Waker,
}

impl Wake for Raise {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.lane.waiting.store(true, Ordering::Relaxed);
        self.task.wake_by_ref();
    }
}

impl<F: Future + Unpin> Future for Watched<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let watcher = &mut *this.watcher;
        // The accept loop runs: whoever it lets in is served now.
        watcher.lane.waiting.store(false, Ordering::Relaxed);
        let raise = match &watcher.wakers {
            Some((task, raise)) if task.will_wake(cx.waker()) => raise,
            _ => {
                let raise = Waker::from(Arc::new(Raise {
                    lane: watcher.lane.clone(),
                    task: cx.waker().clone(),
                }));
                &watcher.wakers.insert((cx.waker().clone(), raise)).1
            }
        };
        Pin::new(&mut this.future).poll(&mut Context::from_waker(raise))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use futures::task::noop_waker;

    #[test]
    fn a_wake_up_raises_the_flag_and_the_next_poll_lowers_it() {
        let lane = Lane::new();
        let mut watcher = lane.watcher();
        let (tx, mut rx) = oneshot::channel::<u8>();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut watcher.watch(&mut rx))
            .poll(&mut cx)
            .is_pending());
        assert!(!lane.waiting(), "nobody has arrived yet");
        tx.send(7).unwrap();
        assert!(lane.waiting(), "the wake-up raises the flag");
        let got = Pin::new(&mut watcher.watch(&mut rx)).poll(&mut cx);
        assert_eq!(got, Poll::Ready(Ok(7)));
        assert!(!lane.waiting(), "the accept loop ran");
    }
}
