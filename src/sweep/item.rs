//! A plan item's state, as a typed state machine: its states, their wording and the
//! transitions allowed, in one place. Every change of `plan_items.state` is a
//! compare-and-set from a state allowed to become the new one
//! ([`super::store::set_item_state_in`]).
//!
//! ```text
//! pending ──► done | skipped | failed | still_billed
//! failed  ──► done | skipped | failed | still_billed   (applying again retries it)
//! done, skipped, still_billed: final
//! ```
//!
//! A new outcome that needs its own state is added here with its transitions; the outcome
//! text (`plan_items.outcome`) says the details.

/// Where a plan item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not applied yet.
    Pending,
    /// Applied: warned, or removed (or nothing left to remove).
    Done,
    /// Kept at the last moment: active again, a keep, or the owner asked for access.
    Skipped,
    /// The last attempt failed; applying the plan again retries it.
    Failed,
    /// What reseat could remove is removed, but the seat is still billed (a role or group
    /// reseat may not change): an admin looks at it.
    StillBilled,
}

impl ItemState {
    pub const ALL: [ItemState; 5] = [
        ItemState::Pending,
        ItemState::Done,
        ItemState::Skipped,
        ItemState::Failed,
        ItemState::StillBilled,
    ];

    /// As stored in `plan_items.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Done => "done",
            ItemState::Skipped => "skipped",
            ItemState::Failed => "failed",
            ItemState::StillBilled => "still_billed",
        }
    }

    pub fn parse(text: &str) -> Option<ItemState> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether apply still acts on an item in this state.
    pub fn is_actionable(self) -> bool {
        matches!(self, ItemState::Pending | ItemState::Failed)
    }

    /// Whether an item in this state may become `next`.
    pub fn can_become(self, next: ItemState) -> bool {
        self.is_actionable() && next != ItemState::Pending
    }

    /// The states that may become `self`.
    pub fn reachable_from(self) -> Vec<ItemState> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_become(self))
            .collect()
    }
}

impl std::fmt::Display for ItemState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_stay_and_open_ones_move_on() {
        for state in ItemState::ALL {
            assert_eq!(ItemState::parse(state.as_str()), Some(state));
        }
        assert!(ItemState::Pending.can_become(ItemState::Done));
        assert!(ItemState::Failed.can_become(ItemState::Done));
        assert!(ItemState::Failed.can_become(ItemState::Failed));
        assert!(!ItemState::Done.can_become(ItemState::Failed));
        assert!(!ItemState::Skipped.can_become(ItemState::Done));
        assert!(!ItemState::StillBilled.can_become(ItemState::Done));
        assert!(ItemState::Failed.can_become(ItemState::StillBilled));
        assert!(!ItemState::Pending.can_become(ItemState::Pending));
        assert_eq!(
            ItemState::Done.reachable_from(),
            vec![ItemState::Pending, ItemState::Failed]
        );
        assert!(ItemState::Pending.reachable_from().is_empty());
    }
}
