//! An in-memory change log: the commits of a [`MemoryStore`](crate::MemoryStore), bounded by a
//! count, for the watches of the memory backend and the simulation.

use std::collections::VecDeque;

use crate::change::{Change, ChangeEvent, ChangeRead, Cursor, LogSpan, WatchStart, select_changes};
use crate::store::{Outcome, StoreError};

/// Commits kept by default.
pub const DEFAULT_KEPT_COMMITS: usize = 10_000;

/// The recent commits of a store, oldest first.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    commits: VecDeque<(u64, Vec<Change>)>,
    /// The position of the newest commit (0 before the first).
    head: u64,
    /// The highest position dropped by the retention (0 when none was).
    trimmed: u64,
    keep: usize,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self::new(DEFAULT_KEPT_COMMITS)
    }
}

impl ChangeLog {
    /// An empty log keeping the newest `keep` commits.
    pub fn new(keep: usize) -> Self {
        Self { commits: VecDeque::new(), head: 0, trimmed: 0, keep }
    }

    /// Changes how many commits are kept; the oldest beyond it are dropped now.
    pub fn set_keep(&mut self, keep: usize) {
        self.keep = keep;
        self.trim();
    }

    /// The newest commit's position (0 before the first).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The commits kept, oldest first, with their positions.
    pub fn commits(&self) -> impl Iterator<Item = (u64, &[Change])> {
        self.commits.iter().map(|(position, changes)| (*position, &changes[..]))
    }

    /// Records one commit, if it changed anything; returns its position.
    pub fn commit(&mut self, changes: Vec<Change>) -> Option<u64> {
        if changes.is_empty() {
            return None;
        }
        self.head += 1;
        self.commits.push_back((self.head, changes));
        self.trim();
        Some(self.head)
    }

    fn trim(&mut self) {
        while self.commits.len() > self.keep {
            if let Some((position, _)) = self.commits.pop_front() {
                self.trimmed = position;
            }
        }
    }

    /// The positions the log still holds.
    fn span(&self) -> LogSpan {
        LogSpan { head: self.head, trimmed: self.trimmed }
    }

    /// Answers [`StoreRequest::OpenWatch`](crate::StoreRequest::OpenWatch).
    pub fn open(&self, start: WatchStart) -> Result<Outcome, StoreError> {
        self.span().open(start).map(Outcome::WatchOpened)
    }

    /// Answers [`StoreRequest::ReadChanges`](crate::StoreRequest::ReadChanges), or `None`
    /// when no commit is at or after `read.from` yet (the read must wait for one).
    pub fn read(&self, read: &ChangeRead) -> Result<Option<Outcome>, StoreError> {
        self.span().check(read.from)?;
        if read.from.position > self.head {
            return Ok(None);
        }
        let mut budget = read.max_bytes.max(1);
        let mut events: Vec<ChangeEvent> = Vec::new();
        let mut next = read.from;
        let skip = self.commits.partition_point(|(position, _)| *position < read.from.position);
        for (position, changes) in self.commits.iter().skip(skip) {
            if budget == 0 && !events.is_empty() {
                break;
            }
            next = select_changes(*position, changes.iter().cloned(), read, &mut budget, &mut events);
        }
        if next == read.from {
            // Every commit from there on was looked at and none was due: move past them.
            next = Cursor::after(self.head).max(read.from);
        }
        Ok(Some(Outcome::Changes { events, next }))
    }
}
