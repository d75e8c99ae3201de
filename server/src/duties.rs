//! Background duties — the evaluator, the history's persister and
//! maintenance, the WAL writer, the webhook dispatcher and sender, the
//! artifact garbage collection, audit anchoring — and whether each is still
//! alive.
//!
//! A duty that dies while the daemon runs (a panic, a loop that returned)
//! used to go unnoticed: `/readyz` stayed 200 while nothing was evaluated
//! or persisted any more. Every duty is now started or watched through
//! [`Duties`]; one that ends before the daemon is stopping is marked dead
//! with its cause, `modelwatch_background_duty_up{duty}` drops to 0 and
//! `/readyz` answers 503 naming it. A dead duty is not restarted: its state
//! is unknown, and an operator (or the orchestrator reacting to `/readyz`)
//! restarts the daemon.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use tokio::task::JoinHandle;

/// The names of the duties, as they appear in the metric and `/readyz`.
pub mod names {
    pub const EVALUATOR: &str = "evaluator";
    pub const PERSISTER: &str = "history_persister";
    pub const MAINTENANCE: &str = "history_maintenance";
    pub const WAL_WRITER: &str = "wal_writer";
    pub const WEBHOOK_DISPATCHER: &str = "webhook_dispatcher";
    pub const WEBHOOK_SENDER: &str = "webhook_sender";
    /// Deletes the artifacts of deleted versions (`crate::artifact_gc`).
    pub const ARTIFACT_GC: &str = "artifact_gc";
    /// Signs checkpoints of the audit chain head (`crate::audit_anchor`).
    pub const AUDIT_ANCHOR: &str = "audit_anchor";
    /// The heartbeat and duty-lease claims (`crate::cluster`).
    pub const CLUSTER: &str = "cluster";
}

type Probe = Box<dyn Fn() -> Option<String> + Send + Sync>;

#[derive(Default)]
struct Inner {
    /// Duties that died, with why, in the order they died.
    dead: Vec<(String, String)>,
    /// Checks polled at `/readyz` for duties that cannot report themselves
    /// (a thread owned by another crate).
    probes: Vec<(String, Probe)>,
}

/// The daemon's background duties. Cheap to clone.
#[derive(Clone, Default)]
pub struct Duties {
    inner: Arc<Mutex<Inner>>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Duties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duties")
            .field("dead", &self.dead())
            .finish()
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

impl Duties {
    pub fn new() -> Self {
        Self::default()
    }

    fn up(name: &str) {
        crate::metrics::metrics()
            .background_duty_up
            .with_label_values(&[name])
            .set(1);
    }

    /// Records that `name` died (once per duty), unless the daemon is
    /// stopping, when duties end by design.
    pub fn died(&self, name: &str, cause: impl Into<String>) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let cause = cause.into();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.dead.iter().any(|(n, _)| n == name) {
            return;
        }
        tracing::error!(duty = name, cause = %cause, "a background duty died; /readyz now fails: restart the daemon");
        crate::metrics::metrics()
            .background_duty_up
            .with_label_values(&[name])
            .set(0);
        inner.dead.push((name.to_owned(), cause));
    }

    /// From now on, duties that end are stopping, not dying.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Spawns a duty on the current runtime; a panic or an early return
    /// marks it dead.
    pub fn spawn<F>(&self, name: &'static str, duty: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self::up(name);
        let duties = self.clone();
        tokio::spawn(async move {
            match AssertUnwindSafe(duty).catch_unwind().await {
                Ok(()) => duties.died(name, "its loop ended while the daemon was running"),
                Err(panic) => duties.died(name, format!("panicked: {}", panic_message(&*panic))),
            }
        })
    }

    /// Watches a task another crate spawned; awaiting the returned handle
    /// waits for that task.
    pub fn watch(&self, name: &'static str, task: JoinHandle<()>) -> JoinHandle<()> {
        Self::up(name);
        let duties = self.clone();
        tokio::spawn(async move {
            match task.await {
                Ok(()) => duties.died(name, "its loop ended while the daemon was running"),
                Err(e) if e.is_panic() => duties.died(
                    name,
                    format!("panicked: {}", panic_message(&*e.into_panic())),
                ),
                Err(e) => duties.died(name, format!("its task was cancelled: {e}")),
            }
        })
    }

    /// A guard for a duty running on a thread of its own: dropped by a
    /// panic, or before the daemon stops, it marks the duty dead.
    pub fn guard(&self, name: &'static str) -> DutyGuard {
        Self::up(name);
        DutyGuard {
            duties: self.clone(),
            name,
        }
    }

    /// Registers a check for a duty that cannot report itself: `probe`
    /// returns why the duty is dead, or `None` while it runs.
    pub fn probe(
        &self,
        name: &'static str,
        probe: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) {
        Self::up(name);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.probes.push((name.to_owned(), Box::new(probe)));
    }

    /// The dead duties with their causes (probes are asked now).
    pub fn dead(&self) -> Vec<(String, String)> {
        let failed: Vec<(String, String)> = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner
                .probes
                .iter()
                .filter_map(|(name, probe)| probe().map(|cause| (name.clone(), cause)))
                .collect()
        };
        for (name, cause) in failed {
            self.died(&name, cause);
        }
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dead
            .clone()
    }
}

/// See [`Duties::guard`].
pub struct DutyGuard {
    duties: Duties,
    name: &'static str,
}

impl Drop for DutyGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.duties.died(self.name, "its thread panicked");
        } else {
            self.duties
                .died(self.name, "its thread ended while the daemon was running");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_or_returning_duty_is_dead_and_a_stopping_one_is_not() {
        let duties = Duties::new();
        duties
            .spawn("t_panics", async { panic!("boom") })
            .await
            .unwrap();
        duties.spawn("t_returns", async {}).await.unwrap();
        let watched = tokio::spawn(async { panic!("watched boom") });
        duties.watch("t_watched", watched).await.unwrap();
        let dead = duties.dead();
        let names: Vec<&str> = dead.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["t_panics", "t_returns", "t_watched"]);
        assert!(dead[0].1.contains("boom"), "{dead:?}");
        assert!(dead[2].1.contains("watched boom"), "{dead:?}");
        assert_eq!(
            crate::metrics::metrics()
                .background_duty_up
                .with_label_values(&["t_panics"])
                .get(),
            0
        );

        let stopping = Duties::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = stopping.spawn("t_stops", async move {
            let _ = rx.await;
        });
        stopping.stopping();
        drop(tx);
        task.await.unwrap();
        assert!(stopping.dead().is_empty());
    }

    #[test]
    fn thread_guards_and_probes_report() {
        let duties = Duties::new();
        let d = duties.clone();
        let joined = std::thread::spawn(move || {
            let _guard = d.guard("t_thread");
            panic!("thread boom");
        })
        .join();
        assert!(joined.is_err());
        let alive = Arc::new(AtomicBool::new(true));
        let a = alive.clone();
        duties.probe("t_probe", move || {
            (!a.load(Ordering::Acquire)).then(|| "gone".to_owned())
        });
        assert_eq!(duties.dead().len(), 1);
        alive.store(false, Ordering::Release);
        let dead = duties.dead();
        assert_eq!(dead.len(), 2);
        assert_eq!(dead[1], ("t_probe".to_owned(), "gone".to_owned()));
    }
}
