//! Write merging (group commit), after goleveldb: writers queue up; the one at the
//! head is the leader and commits as many queued writes as fit under a size limit
//! in one append and at most one fdatasync, then wakes each of them with the shared
//! result and hands leadership to the next writer still queued. Under load, N
//! concurrent durable writers pay for far fewer than N syncs.

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;

/// A group may grow to the leader's own size plus this much...
const MERGE_SLACK: usize = 128 << 10;
/// ...or, when the leader's write is already large, up to this size.
const MERGE_LIMIT_LARGE: usize = 1 << 20;

/// One write waiting to be committed.
pub(crate) struct Request {
    pub batch: WriteBatch,
    /// This writer wants its write on disk before it returns.
    pub sync: bool,
}

enum SlotState {
    Waiting,
    /// Leadership was handed to this writer.
    Lead,
    /// Committed by a leader: the sequence number of the write, or the group's error.
    Done(Result<u64>),
}

struct Slot {
    req: Request,
    state: Mutex<SlotState>,
    cv: Condvar,
}

#[derive(Default)]
struct Queue {
    /// A leader is committing; new writers queue behind it.
    leading: bool,
    pending: VecDeque<Arc<Slot>>,
}

/// The queue all writes pass through.
pub(crate) struct WriteQueue {
    queue: Mutex<Queue>,
    merging: bool,
    /// A leader panicked inside `commit`: what is on disk and in the keydir is
    /// unknown, so every later write is refused.
    poisoned: std::sync::atomic::AtomicBool,
}

impl WriteQueue {
    pub fn new(merging: bool) -> Self {
        WriteQueue {
            queue: Mutex::new(Queue::default()),
            merging,
            poisoned: Default::default(),
        }
    }

    /// Commits `req`, either as leader (calling `commit` with the group, in queue
    /// order, which returns one sequence number per request or the group's error) or
    /// as a follower of another thread's leader.
    pub fn submit(
        &self,
        req: Request,
        mut commit: impl FnMut(&[&Request]) -> Result<Vec<u64>>,
    ) -> Result<u64> {
        let slot = Arc::new(Slot {
            req,
            state: Mutex::new(SlotState::Waiting),
            cv: Condvar::new(),
        });
        {
            let mut q = self.queue.lock();
            q.pending.push_back(slot.clone());
            if q.leading {
                drop(q);
                let mut st = slot.state.lock();
                loop {
                    match std::mem::replace(&mut *st, SlotState::Waiting) {
                        SlotState::Waiting => slot.cv.wait(&mut st),
                        SlotState::Lead => break,
                        SlotState::Done(r) => return r,
                    }
                }
            } else {
                q.leading = true;
            }
        }
        // Leader. The queue's head is this slot: leadership only passes to the head.
        let group = self.take_group();
        debug_assert!(Arc::ptr_eq(&group[0], &slot));
        let reqs: Vec<&Request> = group.iter().map(|s| &s.req).collect();
        // A panic must still wake the group and hand leadership on, or every
        // writer after it would wait for ever; it resumes once that is done.
        let mut panic = None;
        let outcome = if self.poisoned.load(std::sync::atomic::Ordering::Acquire) {
            Err(poisoned())
        } else {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(&reqs))) {
                Ok(r) => r,
                Err(p) => {
                    self.poisoned
                        .store(true, std::sync::atomic::Ordering::Release);
                    panic = Some(p);
                    Err(poisoned())
                }
            }
        };
        let mut mine = None;
        for (i, s) in group.iter().enumerate() {
            let r = match &outcome {
                Ok(seqs) => Ok(seqs[i]),
                Err(e) => Err(e.clone()),
            };
            if i == 0 {
                mine = Some(r);
            } else {
                *s.state.lock() = SlotState::Done(r);
                s.cv.notify_one();
            }
        }
        let mut q = self.queue.lock();
        match q.pending.front() {
            Some(next) => {
                *next.state.lock() = SlotState::Lead;
                next.cv.notify_one();
            }
            None => q.leading = false,
        }
        drop(q);
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        mine.expect("the leader is in its own group")
    }

    fn take_group(&self) -> Vec<Arc<Slot>> {
        let mut q = self.queue.lock();
        let first = q.pending.pop_front().expect("leader is queued");
        let first_len = first.req.batch.encoded_len();
        let limit = if first_len > MERGE_SLACK {
            MERGE_LIMIT_LARGE.max(first_len)
        } else {
            first_len + MERGE_SLACK
        };
        let mut size = first_len;
        let mut group = vec![first];
        if !self.merging {
            return group;
        }
        while let Some(s) = q.pending.front() {
            if size + s.req.batch.encoded_len() > limit {
                break;
            }
            size += s.req.batch.encoded_len();
            group.push(q.pending.pop_front().expect("front exists"));
        }
        group
    }
}

fn poisoned() -> Error {
    Error::WritesRefused {
        cause: "a write panicked".into(),
    }
}
