//! Account changes between instances: `NOTIFY` on write, `LISTEN` here.
//!
//! Every write that must end cached access (revoke, revoke-all, expiry,
//! disable, app access off, removal) sends a notification in its own
//! transaction, so it is delivered exactly when the write commits. Each
//! instance keeps one connection outside the pool listening, checks it with
//! a query every heartbeat, and reconnects when it fails; the verify cache
//! is told when the feed goes down and when it is back.

use crate::store::{Change, FeedEvent};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

pub const CHANNEL: &str = "davgate_changes";

/// The notification payload for `change`.
pub fn payload(change: &Change) -> String {
    match change {
        Change::User(name) => format!("u:{name}"),
        Change::Password(id) => format!("p:{id}"),
    }
}

fn parse(payload: &str) -> Option<Change> {
    match payload.split_once(':')? {
        ("u", name) => Some(Change::User(name.to_string())),
        ("p", id) => Some(Change::Password(id.to_string())),
        _ => None,
    }
}

/// Follows the channel until the receiver is dropped.
pub fn follow(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    heartbeat: Duration,
) -> mpsc::Receiver<FeedEvent> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut up = false;
        loop {
            let session = listen_once(&config, &tls, heartbeat, &tx, &mut up);
            tokio::select! {
                _ = session => {}
                _ = tx.closed() => return,
            }
            if up {
                up = false;
                tracing::warn!("store change feed lost: reconnecting; cached credentials are re-verified meanwhile");
                if tx.send(FeedEvent::Down).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(heartbeat.min(Duration::from_secs(1))).await;
        }
    });
    rx
}

/// One connection's life: connect, `LISTEN`, forward notifications until
/// the connection or a heartbeat fails.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    heartbeat: Duration,
    tx: &mpsc::Sender<FeedEvent>,
    up: &mut bool,
) {
    let Ok(Ok((client, mut connection))) = tokio::time::timeout(heartbeat, config.connect(tls.clone())).await else {
        return;
    };
    // The connection must be polled for the client's queries to run and for
    // notifications to arrive: a task of its own forwards them.
    let (note_tx, mut notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && note_tx.send(n.payload().to_string()).is_err()
            {
                return;
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    let listening = tokio::time::timeout(heartbeat, client.batch_execute(&format!("LISTEN {CHANNEL}"))).await;
    if !matches!(listening, Ok(Ok(()))) {
        return;
    }
    *up = true;
    tracing::info!("store change feed live");
    if tx.send(FeedEvent::Resumed).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(heartbeat);
    tick.tick().await;
    loop {
        tokio::select! {
            note = notes.recv() => {
                let Some(note) = note else { return };
                if let Some(change) = parse(&note)
                    && tx.send(FeedEvent::Changed(change)).await.is_err()
                {
                    return;
                }
            }
            _ = tick.tick() => {
                if !matches!(tokio::time::timeout(heartbeat, client.simple_query("SELECT 1")).await, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for change in [Change::User("alice".into()), Change::Password("abc123".into()), Change::User("a:b".into())] {
            assert_eq!(parse(&payload(&change)), Some(change));
        }
        assert_eq!(parse("x:y"), None);
        assert_eq!(parse("nothing"), None);
    }
}
