//! Eventual consistency: changes an Atlassian API accepted, made visible after a delay.
//!
//! Atlassian documents that admin changes take time to show (org-role changes "may take
//! up to 30 seconds to be reflected"; identity-provider syncs must propagate before the
//! site APIs see them). The simulator models this with one small mechanism:
//!
//! - A handler that accepts a change checks it against the state reads see now, answers as
//!   the API would (201, 204, ...), and hands the change itself to
//!   [`SimState::change_eventually`](super::state::SimState::change_eventually) instead of
//!   making it on the [`World`] directly.
//! - With a delay of 0 (the default) the change is made at once, under the caller's write
//!   lock: nothing differs from making it directly.
//! - With a delay `d` (`SimConfig::consistency`, `--consistency-ms`, `consistency_ms` in
//!   `PUT /_sim/faults`), the change is queued with the time it becomes due (now + `d`).
//!   Until then **every** read and write sees the world without it: a second identical
//!   request is accepted again, a read-back shows the old membership. Due changes are made,
//!   in the order they were accepted, before the next access to the world
//!   (`SimState::read` / `write`). A change queued behind a later-due one waits for it, so
//!   the order holds when the delay is changed at run time.
//! - Time is tokio's clock (`tokio::time::Instant`), so a test on a paused clock moves
//!   changes into view by advancing it, without sleeping.
//! - [`SimState::settle`](super::state::SimState::settle) makes every queued change now
//!   and [`SimState::pending_changes`](super::state::SimState::pending_changes) counts them.
//!
//! Group memberships changed through the Jira and Confluence APIs use it; any other kind
//! of change (role assignments, for instance) uses it by passing its own closure. Changes
//! made through `/_sim/` and the Rust helpers are immediate: they stand for the state an
//! admin set up, not for an API call.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::model::World;
use super::state::lock;

/// A change to the world, made once it is due.
pub(crate) type Change = Box<dyn FnOnce(&mut World) + Send + Sync>;

/// Accepted changes not yet visible, oldest first.
#[derive(Default)]
pub(crate) struct Pending {
    queue: Mutex<VecDeque<(Instant, Change)>>,
}

impl Pending {
    /// Queues `change` to become visible `delay` from now.
    pub fn push(&self, delay: Duration, change: Change) {
        lock(&self.queue).push_back((Instant::now() + delay, change));
    }

    /// Whether the oldest change is due (cheap: no world lock).
    pub fn any_due(&self) -> bool {
        let now = Instant::now();
        lock(&self.queue)
            .front()
            .is_some_and(|(due, _)| *due <= now)
    }

    /// Makes every due change, in order; with `all`, every queued change.
    pub fn apply(&self, world: &mut World, all: bool) {
        let now = Instant::now();
        let mut queue = lock(&self.queue);
        while queue.front().is_some_and(|(due, _)| all || *due <= now) {
            if let Some((_, change)) = queue.pop_front() {
                change(world);
            }
        }
    }

    /// Changes still queued.
    pub fn len(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Forgets every queued change (a reset).
    pub fn clear(&self) {
        lock(&self.queue).clear();
    }
}
