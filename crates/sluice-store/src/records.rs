//! Audit-only writes (access decisions), grouped: concurrent callers share one [`WriteTx`].
//!
//! A decision changes nothing but the trail, and it is the busiest write there is: every
//! AuthZEN question that is recorded appends an entry. Each caller of [`Store::record`] queues
//! its entries; a leader task takes everything queued, appends it in one transaction and
//! answers every caller once that transaction is durable. While one group waits for its
//! commit, the next gathers (at most [`LEADERS`] groups are in flight), so the write path sees
//! one writer per group instead of one per decision, as the batch Access Evaluations endpoint
//! already does for the questions of one call.
//!
//! INVARIANT: nobody is answered before the group holding their entries is durable, and a
//! group that fails fails every caller in it (each is told, none gets an answer unrecorded).
//! Nothing else is undone with it: an audit-only writer has no change of its own. What goes
//! in a group cannot fail on its own account: names are bounded and NUL-free at the edge.
//! The leader is spawned, so a caller that goes away leaves its entries to be written (as
//! after a crash between commit and answer) and never a group half-written.
//!
//! [`WriteTx`]: crate::WriteTx

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use sluice_audit::{AuditEntry, NewEntry};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Groups in flight at once: one waits for its commit while the next gathers.
const LEADERS: usize = 2;

/// The most entries one group appends; the rest wait for the next group.
const GROUP_ENTRIES: usize = 4096;

type Answer = oneshot::Sender<Result<Vec<AuditEntry>, StoreError>>;

/// One caller's entries.
#[derive(Debug)]
struct Item {
    at: DateTime<Utc>,
    entries: Vec<NewEntry>,
    answer: Answer,
}

#[derive(Debug, Default)]
struct Queue {
    items: Vec<Item>,
    /// Leader tasks running.
    leaders: usize,
}

/// The queue of audit-only writes of one store handle.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    queue: Mutex<Queue>,
}

impl Recorder {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned queue is still a consistent queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next group, or `None` (and one leader fewer) when nothing is queued.
    fn next_group(&self) -> Option<Vec<Item>> {
        let mut q = self.queue();
        if q.items.is_empty() {
            q.leaders = q.leaders.saturating_sub(1);
            return None;
        }
        let mut entries = 0;
        let take = q
            .items
            .iter()
            .take_while(|i| {
                entries += i.entries.len();
                entries <= GROUP_ENTRIES
            })
            .count()
            .max(1);
        Some(q.items.drain(..take).collect())
    }
}

impl Store {
    /// Appends audit entries that record no change of their own (access decisions), sharing
    /// one transaction with whatever else is being recorded this way; returns the entries as
    /// stored, once they are durable.
    pub async fn record(
        &self,
        at: DateTime<Utc>,
        entries: Vec<NewEntry>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut q = self.recorder.queue();
            q.items.push(Item {
                at,
                entries,
                answer,
            });
            let lead = q.leaders < LEADERS;
            if lead {
                q.leaders += 1;
            }
            lead
        };
        if lead {
            tokio::spawn(lead_groups(self.clone()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store was closed".into())))
    }
}

/// Writes groups until nothing is queued.
async fn lead_groups(store: Store) {
    while let Some(mut group) = store.recorder.next_group() {
        let counts: Vec<usize> = group.iter().map(|i| i.entries.len()).collect();
        match write(&store, &mut group).await {
            Ok(mut stored) => {
                // In the order appended: each caller's entries, then the next caller's.
                for (item, n) in group.into_iter().zip(counts).rev() {
                    let mine = stored.split_off(stored.len().saturating_sub(n));
                    let _ = item.answer.send(Ok(mine));
                }
            }
            Err(e) => {
                for item in group {
                    let _ = item.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn write(store: &Store, group: &mut [Item]) -> Result<Vec<AuditEntry>, StoreError> {
    let mut tx = store.begin().await?;
    for item in group {
        for e in std::mem::take(&mut item.entries) {
            tx.audit(item.at, e).await?;
        }
    }
    tx.commit().await
}
