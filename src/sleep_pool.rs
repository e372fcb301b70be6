//! Timeouts that cost no timer-wheel work per request.
//!
//! A tokio `Sleep` is inserted into its runtime's timer wheel when first
//! polled and taken out again when dropped. hyper's header-read timeout
//! makes a new one for every request head, and the upstream timeout one per
//! exchange: together ~2.4k instructions of a cached keep-alive request
//! (BENCHMARKS.md, item 13). A [`SleepPool`] keeps the timer of a sleep that
//! ends, still in the wheel, for the next sleep. A later deadline is only
//! recorded; when the timer fires early, it is moved to the recorded
//! deadline. With a fixed timeout the wheel sees about one operation per
//! timeout period instead of two per request.
//!
//! A kept timer still holds the waker of the task that last polled it, so
//! when it fires, that task is polled once for nothing: one spurious
//! wake-up per kept timer and timeout period.
//!
//! One pool per runtime: a timer belongs to the runtime it was made on.
//! Each worker thread has its own runtime, `Protocols` and gateway, and
//! each of those its own pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Timers kept past their last sleep: enough for every connection of a
/// busy worker, few enough that an idle one holds little (~100 bytes each).
const KEPT: usize = 1024;

/// Timers for sleeps of one duration, on one runtime.
#[derive(Clone, Default)]
pub struct SleepPool {
    kept: Arc<Mutex<Vec<Pin<Box<Sleep>>>>>,
}

impl SleepPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sleep until `deadline`. Must be called on the pool's runtime.
    pub fn sleep_until(&self, deadline: Instant) -> PooledSleep {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let timer = match kept {
            Some(mut timer) => {
                // A later deadline is left to `poll`; an earlier one must
                // move the timer now, or it would fire too late.
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        PooledSleep { timer: Some(timer), deadline, pool: self.clone() }
    }

    pub fn sleep(&self, duration: Duration) -> PooledSleep {
        self.sleep_until(Instant::now() + duration)
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.lock().unwrap().len()
    }
}

/// A sleep whose timer goes back to its pool when it is dropped.
pub struct PooledSleep {
    /// Always `Some` until dropped. Its deadline is at or before ours.
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    pool: SleepPool,
}

impl PooledSleep {
    /// Moves the deadline; like `sleep_until`, a later one costs nothing now.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(timer) = &mut self.timer
            && timer.deadline() > deadline
        {
            timer.as_mut().reset(deadline);
        }
    }
}

impl Future for PooledSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(timer) = &mut this.timer else { return Poll::Ready(()) };
        loop {
            ready!(timer.as_mut().poll(cx));
            if timer.deadline() >= this.deadline {
                return Poll::Ready(());
            }
            // Fired for an earlier deadline (a sleep before this one).
            timer.as_mut().reset(this.deadline);
        }
    }
}

impl Drop for PooledSleep {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            let mut kept = self.pool.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() < KEPT {
                kept.push(timer);
            }
        }
    }
}

impl hyper::rt::Sleep for PooledSleep {}

/// hyper's timer (for the HTTP/1 header-read timeout) drawing on the pool.
impl hyper::rt::Timer for SleepPool {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SleepPool::sleep(self, duration))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SleepPool::sleep_until(self, deadline.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_at_its_deadline() {
        let pool = SleepPool::new();
        let start = Instant::now();
        pool.sleep(Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_serves_a_later_and_an_earlier_deadline() {
        let pool = SleepPool::new();
        let start = Instant::now();
        // Polled once, so its timer is in the wheel for 10 s from now.
        let first = pool.sleep(Duration::from_secs(10));
        assert!(futures_poll_once(first).await.is_pending());
        assert_eq!(pool.kept(), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        // Later: the kept timer fires at 10 s and is moved to 25 s.
        pool.sleep(Duration::from_secs(20)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(25));
        assert_eq!(pool.kept(), 1, "the one timer was used again");
        // Earlier than the kept timer's deadline: moved back at once.
        let before = Instant::now();
        let long = pool.sleep(Duration::from_secs(60));
        drop(long);
        pool.sleep(Duration::from_secs(1)).await;
        assert_eq!(before.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_moves_the_deadline_either_way() {
        let pool = SleepPool::new();
        let start = Instant::now();
        let mut sleep = pool.sleep(Duration::from_secs(10));
        sleep.reset(start + Duration::from_secs(40));
        (&mut sleep).await;
        assert_eq!(start.elapsed(), Duration::from_secs(40));
        let mut sleep = pool.sleep(Duration::from_secs(10));
        sleep.reset(Instant::now() + Duration::from_secs(2));
        let at = Instant::now();
        sleep.await;
        assert_eq!(at.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn hyper_sleeps_use_the_pool() {
        use hyper::rt::Timer;
        let pool = SleepPool::new();
        let start = std::time::Instant::now();
        Timer::sleep_until(&pool, start + Duration::from_secs(3)).await;
        assert_eq!(pool.kept(), 1);
        Timer::sleep(&pool, Duration::from_secs(3)).await;
        assert_eq!(pool.kept(), 1);
    }

    /// Polls `sleep` once, then drops it (its timer goes back to the pool).
    async fn futures_poll_once(mut sleep: PooledSleep) -> Poll<()> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut sleep).poll(cx))).await
    }
}
