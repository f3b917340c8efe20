//! The threads that run the pipeline's blocking work for the server
//! (waiting on the embedding batch, k-NN, retrieval). They run at a lowered
//! CPU priority, so on a busy host the async runtime's threads, which parse
//! calls and send the acknowledgements, win the CPU; the analysis still gets
//! all the CPU they leave. Threads start on demand up to a cap and end after
//! a while idle.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// Niceness of the pool's threads: at 10 a thread weighs about a ninth of a
/// default one in the Linux scheduler (the embedding worker, under
/// SCHED_IDLE, weighs less still).
const NICENESS: libc::c_int = 10;
/// An idle thread ends after this long without work.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures on lowered-priority threads; see the module docs.
#[derive(Clone)]
pub struct WorkPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    work_ready: Condvar,
    max_threads: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

/// Why a job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the pipeline task panicked")]
    Panicked,
    #[error("no thread could be started for the pipeline task")]
    NoThread,
}

impl WorkPool {
    /// A pool of at most `max_threads` threads (at least one). Each blocked
    /// call holds a thread, so the cap should be the calls let in at once.
    pub fn new(max_threads: usize) -> WorkPool {
        WorkPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work_ready: Condvar::new(),
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Runs `work` on a pool thread and waits for its result without
    /// blocking the async runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work));
            let _ = tx.send(result.map_err(|_| PoolError::Panicked));
        }));
        // A job dropped unrun (no thread could start) closes the channel.
        rx.await.unwrap_or(Err(PoolError::NoThread))
    }

    fn submit(&self, job: Job) {
        let mut state = self.shared.lock();
        state.queue.push_back(job);
        if state.idle > 0 {
            self.shared.work_ready.notify_one();
            return;
        }
        if state.threads >= self.shared.max_threads {
            // Every thread is busy: the job waits its turn.
            return;
        }
        state.threads += 1;
        drop(state);
        let shared = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("pipeline-work".into())
            .spawn(move || shared.work());
        if let Err(error) = started {
            tracing::error!(%error, "could not start a pipeline thread");
            let mut state = self.shared.lock();
            state.threads -= 1;
            if state.threads == 0 {
                // Nobody would ever run them: their callers get NoThread.
                state.queue.clear();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock and catch their panics: a poisoned
        // lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn work(&self) {
        lower_priority();
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, wait) = self
                .work_ready
                .wait_timeout(state, IDLE_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if wait.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        let thread = unsafe { libc::gettid() };
        // On Linux a niceness set for a thread id applies to that thread only.
        // SAFETY: plain syscall on this thread's own id.
        let status =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, NICENESS) };
        if status != 0 {
            tracing::warn!("could not lower a pipeline thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_every_job_past_the_thread_cap() {
        let pool = WorkPool::new(2);
        let jobs = (0..16u64).map(|n| {
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    n * n
                })
                .await
            }
        });
        let results: Vec<u64> = futures::future::join_all(jobs)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(results, (0..16u64).map(|n| n * n).collect::<Vec<_>>());
        assert!(pool.shared.lock().threads <= 2);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_goes_on() {
        let pool = WorkPool::new(1);
        let failed = pool.run(|| panic!("boom")).await;
        assert!(matches!(failed, Err(PoolError::Panicked)));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn its_threads_run_at_lowered_priority() {
        let pool = WorkPool::new(1);
        let niceness = pool
            .run(|| {
                // SAFETY: reads this thread's own niceness.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
            })
            .await
            .unwrap();
        assert_eq!(niceness, NICENESS);
    }
}
