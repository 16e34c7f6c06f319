//! Read coalescing: one shared clock that paces the reads of streaming connections.
//!
//! A connection whose socket already holds more bytes every time its task comes back to it
//! is a stream (a bot, a paste, a load generator). Reading it as fast as bytes arrive costs
//! a system call, an ACK and often a wake-up for every one or two small messages, so under
//! such load most of the server's time goes to the kernel rather than to chat. A streaming
//! connection instead waits for the next tick of this clock before it reads again, and that
//! one read takes everything that arrived since. A read that had to wait for bytes ends the
//! stream: interactive and paced traffic is read the moment it arrives and never waits for a
//! tick. The clock runs only while someone waits on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::rt;

/// Where one waiter stands: the tick count when it started waiting (compared only for
/// equality, so it may wrap), and its waker's place in the list.
pub type TickSlot = (u32, u32);

/// The clock's shared state.
#[derive(Debug, Default)]
struct State {
    /// Ticks so far.
    ticks: u32,
    /// Tasks waiting for the next tick.
    waiters: Vec<Waker>,
}

/// The shared clock; [`Pacer::run`] drives it.
#[derive(Debug)]
pub struct Pacer {
    /// Time between ticks; zero turns coalescing off.
    period: Duration,
    /// Set by [`Pacer::close`]: nobody waits any more.
    stopped: AtomicBool,
    /// Tick count and waiters.
    state: Mutex<State>,
    /// Starts the clock when the first waiter arrives.
    wake: async_channel::Sender<()>,
    /// The clock task's end of `wake`.
    woken: async_channel::Receiver<()>,
}

impl Pacer {
    /// A clock that ticks every `period` while someone waits (zero: never used).
    pub fn new(period: Duration) -> Arc<Pacer> {
        let (wake, woken) = async_channel::bounded(1);
        Arc::new(Pacer {
            period,
            stopped: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            wake,
            woken,
        })
    }

    /// Whether streaming connections wait for ticks.
    pub fn enabled(&self) -> bool {
        !self.period.is_zero() && !self.stopped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a counter and a list of wakers: usable whatever a panic left.
        crate::sync::lock(&self.state)
    }

    /// Ready once a tick has passed since the first poll with an empty `slot` (which this
    /// fills); empties `slot` when it returns ready.
    pub fn poll_tick(&self, slot: &mut Option<TickSlot>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if self.stopped.load(Ordering::Relaxed) {
            *slot = None;
            return Poll::Ready(());
        }
        match *slot {
            Some((ticks, _)) if state.ticks != ticks => {
                *slot = None;
                Poll::Ready(())
            }
            Some((_, index)) => {
                // Polled again before the tick: keep the newest waker.
                if let Some(waker) = state.waiters.get_mut(index as usize) {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                }
                Poll::Pending
            }
            None => {
                state.waiters.push(cx.waker().clone());
                let index = u32::try_from(state.waiters.len() - 1).unwrap_or(u32::MAX);
                *slot = Some((state.ticks, index));
                if state.waiters.len() == 1 {
                    // Full means the clock is already on its way to a tick.
                    let _ = self.wake.try_send(());
                }
                Poll::Pending
            }
        }
    }

    /// Completes at the next tick.
    #[cfg(test)]
    pub fn tick(&self) -> Tick<'_> {
        Tick {
            pacer: self,
            slot: None,
        }
    }

    /// Ticks once every period while anyone waits, until [`Pacer::close`].
    pub async fn run(self: Arc<Self>) {
        while self.woken.recv().await.is_ok() {
            rt::sleep(self.period).await;
            self.fire();
        }
    }

    /// One tick: wakes everyone waiting.
    fn fire(&self) {
        let waiters = {
            let mut state = self.lock();
            state.ticks = state.ticks.wrapping_add(1);
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// Stops the clock for good: everyone waiting goes ahead now, and nobody waits again
    /// (at shutdown, so that no read sits out a tick).
    pub fn close(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.close();
        self.fire();
    }
}

/// The future of [`Pacer::tick`].
#[cfg(test)]
#[derive(Debug)]
pub struct Tick<'a> {
    /// The clock.
    pacer: &'a Pacer,
    /// Where it waits.
    slot: Option<TickSlot>,
}

#[cfg(test)]
impl std::future::Future for Tick<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let pacer = self.pacer;
        pacer.poll_tick(&mut self.slot, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn waiters_are_released_together_at_the_next_tick() {
        async_std::task::block_on(async {
            let pacer = Pacer::new(Duration::from_millis(20));
            async_std::task::spawn(pacer.clone().run());
            let started = Instant::now();
            // join_all polls all three before the clock can tick: they wait for one tick.
            futures::future::join_all((0..3).map(|_| pacer.tick())).await;
            assert!(started.elapsed() >= Duration::from_millis(20));
            assert_eq!(pacer.lock().ticks, 1, "one tick released all three");
            pacer.close();
        });
    }

    #[test]
    fn the_clock_stops_when_nobody_waits() {
        async_std::task::block_on(async {
            let pacer = Pacer::new(Duration::from_millis(5));
            async_std::task::spawn(pacer.clone().run());
            pacer.tick().await;
            pacer.tick().await;
            async_std::task::sleep(Duration::from_millis(50)).await;
            assert_eq!(pacer.lock().ticks, 2, "no ticks without waiters");
            pacer.close();
        });
    }

    #[test]
    fn close_releases_every_waiter_and_turns_pacing_off() {
        async_std::task::block_on(async {
            // A clock far too slow to tick during the test.
            let pacer = Pacer::new(Duration::from_secs(3600));
            async_std::task::spawn(pacer.clone().run());
            let waiting = futures::future::join_all((0..3).map(|_| pacer.tick()));
            let close = async {
                pacer.close();
            };
            let released = async {
                futures::future::join(waiting, close).await;
                assert!(!pacer.enabled());
                pacer.tick().await;
            };
            async_std::future::timeout(Duration::from_secs(5), released)
                .await
                .expect("close released the waiters, and later ticks do not wait");
        });
    }

    #[test]
    fn off_when_the_period_is_zero() {
        assert!(!Pacer::new(Duration::ZERO).enabled());
        assert!(Pacer::new(Duration::from_millis(1)).enabled());
    }
}
