//! What was said in a room: its last messages, for those who enter later.
//!
//! Each room keeps at most `--history N` messages (0 turns history off). Their memory is
//! also counted against one budget for the whole server: a message that would take the
//! total past it first pushes out the room's own oldest ones, and if that is not enough it
//! is delivered but not kept. So history costs at most the budget, however many rooms there
//! are. History lives in memory: a restart forgets it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use protocol::Text;

/// Bookkeeping per message besides its text (the entry, its `Arc`s, the deque slot).
const OVERHEAD: usize = 64;

/// The limits every room's history shares.
#[derive(Debug)]
pub struct Budget {
    /// Most messages per room (0: history off).
    pub per_room: usize,
    /// Most bytes all rooms' history may hold together.
    limit: usize,
    /// Bytes held now.
    used: AtomicUsize,
}

impl Budget {
    /// `per_room` messages per room, `limit` bytes in all.
    pub fn new(per_room: usize, limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            per_room,
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes all history holds now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One message as history keeps it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When the server received it (milliseconds since the Unix epoch).
    pub time_ms: u64,
    /// Who said it.
    pub nick: Arc<str>,
    /// `~user@host` of an IRC user (see [`crate::event::Who`]).
    pub userhost: Option<Arc<str>>,
    /// What was said.
    pub text: Text<'static>,
    /// An IRC NOTICE.
    pub notice: bool,
}

impl Entry {
    /// The memory this entry is charged.
    fn cost(&self) -> usize {
        let userhost = self.userhost.as_ref().map_or(0, |u| u.len());
        self.text.as_str().len() + self.nick.len() + userhost + OVERHEAD
    }

    /// Who said it.
    pub fn who(&self) -> crate::event::Who<'_> {
        crate::event::Who {
            nick: &self.nick,
            userhost: self.userhost.as_deref(),
        }
    }
}

/// One room's history.
#[derive(Debug)]
pub struct History {
    /// Oldest first.
    entries: VecDeque<Entry>,
    /// Bytes charged to the budget.
    bytes: usize,
    /// The shared limits.
    budget: Arc<Budget>,
}

impl History {
    /// Empty.
    pub fn new(budget: Arc<Budget>) -> History {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Whether history is kept at all.
    pub fn enabled(&self) -> bool {
        self.budget.per_room > 0
    }

    /// Drops the oldest entry; `false` when there is none.
    fn drop_oldest(&mut self) -> bool {
        match self.entries.pop_front() {
            Some(old) => {
                let cost = old.cost();
                self.bytes -= cost;
                self.budget.used.fetch_sub(cost, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Keeps `entry`, within the room's count and the server's budget; `false` if it could
    /// not be kept.
    pub fn push(&mut self, entry: Entry) -> bool {
        if !self.enabled() {
            return false;
        }
        while self.entries.len() >= self.budget.per_room {
            self.drop_oldest();
        }
        let cost = entry.cost();
        while self.budget.used() + cost > self.budget.limit {
            if !self.drop_oldest() {
                return false;
            }
        }
        self.budget.used.fetch_add(cost, Ordering::Relaxed);
        self.bytes += cost;
        self.entries.push_back(entry);
        true
    }

    /// A copy of what is kept, oldest first.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.entries.iter().cloned().collect()
    }

    /// The newest entries whose memory adds up to at most `bytes`, oldest first: what a
    /// joiner is shown, so that the replay never fills its send queue by itself.
    pub fn newest_within(&self, bytes: usize) -> Vec<Entry> {
        let mut total = 0;
        let mut n = 0;
        for e in self.entries.iter().rev() {
            total += e.cost();
            if total > bytes {
                break;
            }
            n += 1;
        }
        self.entries
            .iter()
            .skip(self.entries.len() - n)
            .cloned()
            .collect()
    }

    /// Messages kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Entry {
        Entry {
            time_ms: 1,
            nick: Arc::from("a"),
            userhost: None,
            text: Text::new(text, 4096).unwrap().into_owned(),
            notice: false,
        }
    }

    #[test]
    fn keeps_the_last_n() {
        let budget = Budget::new(3, 1 << 20);
        let mut h = History::new(budget.clone());
        for i in 0..5 {
            assert!(h.push(entry(&i.to_string())));
        }
        let kept: Vec<String> = h
            .snapshot()
            .iter()
            .map(|e| e.text.as_str().to_owned())
            .collect();
        assert_eq!(kept, ["2", "3", "4"]);
        let newest: Vec<String> = h
            .newest_within(2 * entry("0").cost())
            .iter()
            .map(|e| e.text.as_str().to_owned())
            .collect();
        assert_eq!(newest, ["3", "4"], "the newest that fit");
        assert_eq!(budget.used(), 3 * entry("0").cost());
        drop(h);
        assert_eq!(budget.used(), 0, "a dropped room gives its memory back");
    }

    #[test]
    fn off_keeps_nothing() {
        let mut h = History::new(Budget::new(0, 1 << 20));
        assert!(!h.push(entry("x")));
        assert!(h.is_empty());
    }

    #[test]
    fn the_total_is_bounded_across_rooms() {
        let cost = entry("x").cost();
        let budget = Budget::new(100, 5 * cost);
        let mut a = History::new(budget.clone());
        let mut b = History::new(budget.clone());
        for _ in 0..4 {
            assert!(a.push(entry("x")));
        }
        assert!(b.push(entry("x")));
        // Full: b has only its own entry to give up.
        assert!(b.push(entry("x")));
        assert_eq!(b.len(), 1);
        assert!(budget.used() <= 5 * cost);
        // a gives up its own oldest.
        assert!(a.push(entry("x")));
        assert_eq!(a.len(), 4);
        let big = Budget::new(10, cost - 1);
        let mut c = History::new(big);
        assert!(
            !c.push(entry("x")),
            "bigger than the whole budget: not kept"
        );
    }
}
