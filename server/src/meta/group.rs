//! Group commit: writes that arrive together share one transaction and one
//! durable commit, each caller answered only once that commit is done.
//!
//! No thread of its own: a caller queues its job, then either finds it
//! done by the batch that was committing, or becomes the leader and commits
//! everything queued (its own job included) in one transaction. A job must
//! refuse (a typed, non-internal error) before it writes anything, and may
//! run more than once: an internal error aborts the transaction, and the
//! batch runs again without that job, so no job commits half-done and none
//! is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use exhibit_proto::frame::ErrorCode;

use crate::error::ServerError;
use crate::meta::{MetaStore, Result, Tx};

/// One queued write.
pub type Job = Box<dyn Fn(&mut dyn Tx) -> Result<()> + Send>;

#[derive(Default)]
struct Slot(Mutex<Option<Result<()>>>);

impl Slot {
    fn take(&self) -> Option<Result<()>> {
        lock(&self.0).take()
    }

    fn put(&self, r: Result<()>) {
        *lock(&self.0) = Some(r);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The queue of writes waiting for a commit.
#[derive(Default)]
pub struct GroupCommit {
    /// One commit per write (the benchmark's baseline).
    serial: bool,
    pending: Mutex<Vec<(Job, Arc<Slot>)>>,
    leader: Mutex<()>,
    batches: AtomicU64,
    jobs: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (batches, jobs) = self.stats();
        f.debug_struct("GroupCommit").field("batches", &batches).field("jobs", &jobs).finish()
    }
}

impl GroupCommit {
    /// One commit per write, as before group commit: only the benchmark's
    /// baseline uses it (`EXHIBITD_SERIAL_COMMITS=1`).
    pub fn serial() -> Self {
        GroupCommit { serial: true, ..GroupCommit::default() }
    }

    /// Run `job` in a transaction shared with the jobs queued beside it;
    /// returns once that transaction is durable (or the job refused).
    pub fn run(&self, store: &dyn MetaStore, job: Job) -> Result<()> {
        let slot = Arc::new(Slot::default());
        if self.serial {
            let _leader = lock(&self.leader);
            self.commit(store, vec![(job, slot.clone())]);
            return slot.take().unwrap_or_else(|| Err(ServerError::Store("a write got no answer".into())));
        }
        lock(&self.pending).push((job, slot.clone()));
        // Whoever holds `leader` commits everything queued before it took
        // the queue; a job still queued once we hold it is ours to commit.
        let _leader = lock(&self.leader);
        if let Some(r) = slot.take() {
            return r;
        }
        let jobs = std::mem::take(&mut *lock(&self.pending));
        self.commit(store, jobs);
        slot.take().unwrap_or_else(|| Err(ServerError::Store("a batched write got no answer".into())))
    }

    /// (batches committed, jobs in them), for metrics and tests.
    pub fn stats(&self) -> (u64, u64) {
        (self.batches.load(Ordering::Relaxed), self.jobs.load(Ordering::Relaxed))
    }

    fn commit(&self, store: &dyn MetaStore, mut jobs: Vec<(Job, Arc<Slot>)>) {
        while !jobs.is_empty() {
            let mut tx = match store.write() {
                Ok(tx) => tx,
                Err(e) => return fail_all(jobs, &e),
            };
            let mut results = Vec::with_capacity(jobs.len());
            let mut failed = None;
            for (i, (job, _)) in jobs.iter().enumerate() {
                match job(tx.as_mut()) {
                    Ok(()) => results.push(Ok(())),
                    Err(e) if e.code() != ErrorCode::Internal => results.push(Err(e)),
                    Err(e) => {
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            if let Some((i, e)) = failed {
                // Roll back, answer the job that failed, run the rest again.
                drop(tx);
                let (_, slot) = jobs.remove(i);
                slot.put(Err(e));
                continue;
            }
            let n = jobs.len() as u64;
            return match tx.commit() {
                Ok(()) => {
                    self.batches.fetch_add(1, Ordering::Relaxed);
                    self.jobs.fetch_add(n, Ordering::Relaxed);
                    for ((_, slot), r) in jobs.into_iter().zip(results) {
                        slot.put(r);
                    }
                }
                Err(e) => {
                    // Refusals wrote nothing: they keep their own answer.
                    for ((_, slot), r) in jobs.into_iter().zip(results) {
                        slot.put(r.and(Err(ServerError::Store(e.to_string()))));
                    }
                }
            };
        }
    }
}

fn fail_all(jobs: Vec<(Job, Arc<Slot>)>, e: &ServerError) {
    for (_, s) in jobs {
        s.put(Err(ServerError::Store(e.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::redb::RedbMeta;

    fn store() -> (tempfile::TempDir, Arc<dyn MetaStore>) {
        let dir = tempfile::tempdir().unwrap();
        let m: Arc<dyn MetaStore> = Arc::new(RedbMeta::open(&dir.path().join("m.redb")).unwrap());
        (dir, m)
    }

    fn set(name: &'static str, v: u64) -> Job {
        Box::new(move |tx| tx.set_counter(name, v))
    }

    #[test]
    fn writes_queued_while_one_commits_share_the_next_commit() {
        let (_dir, m) = store();
        let g = Arc::new(GroupCommit::default());
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let first = {
            let (g, m) = (g.clone(), m.clone());
            std::thread::spawn(move || {
                // Holds the leader's place until the others have queued.
                let job: Job = Box::new(move |tx| {
                    let _ = lock(&go_rx).recv();
                    tx.set_counter("first", 1)
                });
                g.run(m.as_ref(), job)
            })
        };
        // Until the first job runs: the leader's place taken, the queue empty.
        while g.leader.try_lock().is_ok() || !lock(&g.pending).is_empty() {
            std::thread::yield_now();
        }
        const NAMES: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let names = NAMES;
        let others: Vec<_> = NAMES
            .iter()
            .map(|n| {
                let (g, m) = (g.clone(), m.clone());
                std::thread::spawn(move || g.run(m.as_ref(), set(n, 2)))
            })
            .collect();
        while lock(&g.pending).len() < names.len() {
            std::thread::yield_now();
        }
        go_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        for t in others {
            t.join().unwrap().unwrap();
        }
        assert_eq!(g.stats(), (2, 11), "ten writes queued together were not committed together");
        let r = m.read().unwrap();
        assert!(names.iter().all(|n| r.counter(n).unwrap() == Some(2)));
    }

    #[test]
    fn a_refusal_is_answered_alone_and_an_internal_error_does_not_take_others_with_it() {
        let (_dir, m) = store();
        let g = GroupCommit::default();
        let refuse: Job = Box::new(|_| Err(ServerError::Conflict("no".into())));
        assert!(matches!(g.run(m.as_ref(), refuse), Err(ServerError::Conflict(_))));
        // Queue three, the middle one failing inside the transaction after
        // writing: it must not commit, the other two must.
        lock(&g.pending).push((set("x", 1), Arc::new(Slot::default())));
        let bad_slot = Arc::new(Slot::default());
        let bad: Job = Box::new(|tx| {
            tx.set_counter("bad", 1)?;
            Err(ServerError::Store("disk on fire".into()))
        });
        lock(&g.pending).push((bad, bad_slot.clone()));
        assert!(g.run(m.as_ref(), set("y", 1)).is_ok());
        assert!(matches!(bad_slot.take(), Some(Err(ServerError::Store(_)))));
        let r = m.read().unwrap();
        assert_eq!((r.counter("x").unwrap(), r.counter("y").unwrap()), (Some(1), Some(1)));
        assert_eq!(r.counter("bad").unwrap(), None, "a failed job's write was committed");
    }
}
