//! Threads of our own beside the executor, for work that would hold it up (password hashing,
//! TLS handshakes' arithmetic): a bounded queue of jobs, each given the thread's own state,
//! and the thread's CPU priority below the executor's.

use std::io;

/// A job for a worker thread, given that thread's state.
pub type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Runs `work` on one of the threads taking jobs from `queue` (waiting while the queue is
/// full) and waits for its result; `gone` is the error's text when the threads are gone.
pub async fn run_on<S, T: Send + 'static>(
    queue: &async_channel::Sender<Job<S>>,
    gone: &'static str,
    work: impl FnOnce(&mut S) -> T + Send + 'static,
) -> io::Result<T> {
    let (done, result) = futures::channel::oneshot::channel();
    let job: Job<S> = Box::new(move |state: &mut S| {
        let _ = done.send(work(state));
    });
    queue.send(job).await.map_err(|_| io::Error::other(gone))?;
    result.await.map_err(|_| io::Error::other(gone))
}

/// How far below the executor a worker thread runs.
#[derive(Debug, Clone, Copy)]
pub enum Priority {
    /// Only CPU time nothing else wants (`SCHED_IDLE` on Linux, the idle priority elsewhere).
    Idle,
    /// Below normal threads, above idle ones (a nice value of about 10 on Unix, below-normal
    /// on Windows).
    Low,
}

/// Puts the calling thread at `priority`; a refusal is logged, not fatal.
pub fn lower_priority(priority: Priority) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let set = match priority {
        #[cfg(target_os = "linux")]
        Priority::Idle => {
            use thread_priority::unix::{
                set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
                ThreadSchedulePolicy,
            };
            let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
                .map_err(|e| format!("{e:?}"))
        }
        #[cfg(not(target_os = "linux"))]
        Priority::Idle => thread_priority::set_current_thread_priority(ThreadPriority::Min)
            .map_err(|e| format!("{e:?}")),
        Priority::Low => ThreadPriorityValue::try_from(25u8)
            .map_err(|e| format!("{e:?}"))
            .and_then(|value| {
                thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value))
                    .map_err(|e| format!("{e:?}"))
            }),
    };
    if let Err(e) = set {
        let name = std::thread::current().name().unwrap_or("worker").to_owned();
        log::warn!("{name} thread keeps its CPU priority: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_with_the_threads_state_and_a_closed_queue_is_an_error() {
        let (jobs, queue) = async_channel::bounded::<Job<u32>>(1);
        let thread = std::thread::spawn(move || {
            let mut count = 0u32;
            while let Ok(job) = queue.recv_blocking() {
                job(&mut count);
            }
        });
        async_std::task::block_on(async {
            for expected in 1..=3 {
                let seen = run_on(&jobs, "gone", |count: &mut u32| {
                    *count += 1;
                    *count
                })
                .await
                .unwrap();
                assert_eq!(seen, expected);
            }
        });
        jobs.close();
        thread.join().unwrap();
        let err = async_std::task::block_on(run_on(&jobs, "the test threads are gone", |_| ()))
            .unwrap_err();
        assert_eq!(err.to_string(), "the test threads are gone");
    }
}
