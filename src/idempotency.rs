//! Idempotent `Handle`: the inquiry ids handled within the window, known in
//! memory so the check before the acknowledgement never waits on the store.
//! The outcome log holds what each caller got; this only says whether there
//! is something to replay, or a call handling the same id right now.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

type Key = (String, String);

/// Inquiry ids handled recently, by tenant.
pub struct RecentInquiries {
    window: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Handled keys oldest first, for expiry.
    handled: VecDeque<(Instant, Key)>,
}

enum Entry {
    /// Being handled by a call now; the receiver closes when it ends.
    InFlight(watch::Receiver<()>),
    Handled(Instant),
}

/// What to do with an inquiry id.
pub enum Claim {
    /// Not handled within the window: handle it, then call
    /// [`InFlight::handled`]. Dropping the guard releases the id.
    Fresh(InFlight),
    /// Handled within the window: replay what the outcome log holds.
    Handled,
    /// Another call is handling it: wait on this, then claim again.
    Busy(watch::Receiver<()>),
}

/// The claim on an inquiry id being handled.
pub struct InFlight {
    recent: Option<Arc<RecentInquiries>>,
    key: Key,
    _ended: watch::Sender<()>,
}

impl RecentInquiries {
    pub fn new(window: Duration) -> Arc<RecentInquiries> {
        Arc::new(RecentInquiries {
            window,
            state: Mutex::new(State::default()),
        })
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Claims `tenant`'s inquiry `id` for handling, unless it was handled
    /// within the window or is being handled. A zero window claims always.
    pub fn claim(self: &Arc<Self>, tenant: &str, id: &str) -> Claim {
        let key = (tenant.to_string(), id.to_string());
        if self.window.is_zero() {
            return Claim::Fresh(InFlight::untracked(key));
        }
        let mut state = self.lock();
        state.expire(Instant::now(), self.window);
        match state.entries.get(&key) {
            Some(Entry::Handled(_)) => Claim::Handled,
            Some(Entry::InFlight(watcher)) => Claim::Busy(watcher.clone()),
            None => Claim::Fresh(self.track(&mut state, key)),
        }
    }

    /// Claims the inquiry id whatever is known of it: for an id recorded as
    /// handled whose result cannot be replayed.
    pub fn claim_anew(self: &Arc<Self>, tenant: &str, id: &str) -> InFlight {
        let key = (tenant.to_string(), id.to_string());
        if self.window.is_zero() {
            return InFlight::untracked(key);
        }
        self.track(&mut self.lock(), key)
    }

    /// Marks `key` in flight; concurrent claims wait on the returned claim.
    fn track(self: &Arc<Self>, state: &mut State, key: Key) -> InFlight {
        let (ended, watcher) = watch::channel(());
        state.entries.insert(key.clone(), Entry::InFlight(watcher));
        InFlight {
            recent: Some(self.clone()),
            key,
            _ended: ended,
        }
    }

    /// Records that `tenant`'s inquiry `id` was handled at `at` (an earlier
    /// run's outcome, loaded at start).
    pub fn remember(&self, tenant: &str, id: &str, at: Instant) {
        if self.window.is_zero() {
            return;
        }
        let mut state = self.lock();
        let key = (tenant.to_string(), id.to_string());
        state.handled.push_back((at, key.clone()));
        state.entries.insert(key, Entry::Handled(at));
    }

    /// Inquiry ids known, handled or in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((at, _)) = self.handled.front() {
            if now.duration_since(*at) <= window {
                break;
            }
            let (at, key) = self.handled.pop_front().expect("just seen");
            // Handled again since: a later entry in `handled` expires it.
            if matches!(self.entries.get(&key), Some(Entry::Handled(when)) if *when == at) {
                self.entries.remove(&key);
            }
        }
    }
}

impl InFlight {
    /// A claim nothing waits on (idempotency off).
    fn untracked(key: Key) -> InFlight {
        InFlight {
            recent: None,
            key,
            _ended: watch::channel(()).0,
        }
    }

    /// Marks the inquiry handled: its outcome is in the log (or queued for
    /// it), so a retry within the window replays it.
    pub fn handled(mut self) {
        if let Some(recent) = self.recent.take() {
            let now = Instant::now();
            let mut state = recent.lock();
            state.handled.push_back((now, self.key.clone()));
            state
                .entries
                .insert(std::mem::take(&mut self.key), Entry::Handled(now));
        }
    }
}

impl Drop for InFlight {
    /// A call that ended without an outcome releases the id: a retry
    /// handles it afresh.
    fn drop(&mut self) {
        if let Some(recent) = self.recent.take() {
            let mut state = recent.lock();
            if matches!(state.entries.get(&self.key), Some(Entry::InFlight(_))) {
                state.entries.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_replays_a_concurrent_one_waits_and_a_failed_one_is_released() {
        let recent = RecentInquiries::new(Duration::from_secs(600));
        let Claim::Fresh(first) = recent.claim("shop", "q1") else {
            panic!("a new id is fresh")
        };
        let Claim::Busy(mut waiting) = recent.claim("shop", "q1") else {
            panic!("an id in flight is busy")
        };
        assert!(matches!(recent.claim("other-shop", "q1"), Claim::Fresh(_)));
        first.handled();
        // The waiter learns the first call ended.
        assert!(futures::executor::block_on(waiting.changed()).is_err());
        assert!(matches!(recent.claim("shop", "q1"), Claim::Handled));

        let Claim::Fresh(failed) = recent.claim("shop", "q2") else {
            panic!("a new id is fresh")
        };
        drop(failed);
        assert!(matches!(recent.claim("shop", "q2"), Claim::Fresh(_)));
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn ids_expire_after_the_window_and_a_zero_window_always_claims() {
        let recent = RecentInquiries::new(Duration::from_secs(60));
        let long_ago = Instant::now() - Duration::from_secs(120);
        recent.remember("shop", "old", long_ago);
        recent.remember("shop", "new", Instant::now());
        assert!(matches!(recent.claim("shop", "old"), Claim::Fresh(_)));
        assert!(matches!(recent.claim("shop", "new"), Claim::Handled));

        let off = RecentInquiries::new(Duration::ZERO);
        let Claim::Fresh(first) = off.claim("shop", "q") else {
            panic!("a zero window always claims")
        };
        first.handled();
        assert!(matches!(off.claim("shop", "q"), Claim::Fresh(_)));
        assert_eq!(off.len(), 0);
    }
}
