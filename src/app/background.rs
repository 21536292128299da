//! Background tasks (the key refreshers) and their shutdown.

use std::{future::Future, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

/// Owns the background tasks (key refreshers): tells them to stop and
/// waits for them on shutdown, and aborts them if the app is dropped.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    pub(super) fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    pub(super) fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(task(self.stop.subscribe())));
    }

    /// Signals every task and waits for them, at most `grace`; dropping
    /// `self` then aborts any still running (a dropped handle would only
    /// detach its task).
    pub(super) async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let tasks = futures::future::join_all(self.tasks.iter_mut());
        if tokio::time::timeout(grace, tasks).await.is_err() {
            tracing::warn!("background tasks did not stop in time; aborting them");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Background;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_the_stop_signal_is_aborted_when_the_grace_period_ends() {
        let mut background = Background::new();
        let (alive, ended) = tokio::sync::oneshot::channel::<()>();
        background.spawn(|_stop| async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        });
        background.shutdown(Duration::from_secs(1)).await;
        // Aborting drops the task's future, and with it the sender.
        let ended = tokio::time::timeout(Duration::from_secs(60), ended).await;
        assert!(matches!(ended, Ok(Err(_))), "the task still runs");
    }
}
