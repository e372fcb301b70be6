//! One conformance suite for every `Store`: each check is written once and
//! runs against a fresh sled store (`sled::<check>`) and a fresh PostgreSQL
//! database (`postgres::<check>`, on the test binary's throw-away cluster).
//! PostgreSQL-only behaviour (several instances, the database going down)
//! follows the suite.

#[path = "common/postgres.rs"]
mod pg_cluster;

use davgate::config::StoreConfig;
use davgate::gateway::scope::Scope;
use davgate::password::AppPasswordId;
use davgate::secret::Secret;
use davgate::store::model::{
    Activity, AdminToken, AppPassword, Event, EventKind, Login, Revocation, Totp, User, UserState,
};
use davgate::store::{EventQuery, Store, StoreError};
use pg_cluster::PgCluster;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs each check as `sled::<check>` and `postgres::<check>`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$check(super::sled_store(dir.path())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::pg_store().await).await;
                }
            )*
        }
    };
}

conformance!(
    users_are_inserted_updated_and_listed,
    removing_a_user_removes_everything_of_theirs_only,
    passwords_are_inserted_updated_and_read,
    passwords_are_listed_per_user_in_creation_order,
    newly_expired_lists_only_what_the_sweep_must_record,
    activity_keeps_the_latest_time,
    activity_and_its_events_need_an_existing_password,
    activity_is_read_in_the_order_asked,
    events_are_listed_newest_first_and_filtered,
    expiry_is_recorded_once_with_its_event,
    expiry_of_a_removed_password_writes_nothing,
    logins_are_put_and_replaced,
    admin_tokens_are_inserted_listed_and_removed,
    writes_are_counted_and_reads_are_not,
    account_writes_and_their_events_land_together_or_not_at_all,
    a_revocation_is_never_undone_by_a_later_update,
);

fn sled_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(davgate::store::sled::SledStore::open(&dir.join("store"), 8).expect("open sled store"))
}

/// A store on a database of its own on the shared cluster.
async fn pg_store() -> Arc<dyn Store> {
    open_pg(&PgCluster::shared().create_database()).await
}

async fn open_pg(url: &str) -> Arc<dyn Store> {
    davgate::store::open(&StoreConfig::postgres(url)).await.unwrap_or_else(|e| panic!("open {url}: {e}"))
}

// ---------------------------------------------------------------- values

fn user(name: &str) -> User {
    User { name: name.into(), state: UserState::Active, app_access: true, created: 100 }
}

fn password(id: &str, user: &str, created: u64) -> AppPassword {
    AppPassword {
        id: id.into(),
        user: user.into(),
        name: format!("{user}'s phone ({id})"),
        hash: Secret::new(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${id}")),
        scope: Scope::default(),
        created,
        expires: None,
        revoked: None,
        expiry_recorded: false,
    }
}

/// A password with every optional field set.
fn detailed_password(id: &str, user: &str) -> AppPassword {
    AppPassword {
        scope: Scope {
            services: vec!["caldav".into()],
            collections: vec!["calendars/work".into()],
            read_only: true,
            networks: vec!["192.0.2.0/24".parse().unwrap()],
        },
        expires: Some(5_000),
        revoked: Some(Revocation { at: 400, by: "admin".into(), reason: Some("lost phone".into()) }),
        ..password(id, user, 300)
    }
}

fn expiring(id: &str, user: &str, expires: u64) -> AppPassword {
    AppPassword { expires: Some(expires), ..password(id, user, 10) }
}

fn activity(at: u64, ip: &str) -> Activity {
    Activity { at, ip: ip.parse::<IpAddr>().unwrap(), user_agent: Some(format!("DAVx5/4.4 at {at}")) }
}

fn event(user: &str, kind: EventKind, at: u64) -> Event {
    Event { at, user: user.into(), kind, password_id: None, actor: "cli".into(), detail: None }
}

fn password_event(user: &str, kind: EventKind, at: u64, id: &str) -> Event {
    Event { password_id: Some(id.into()), detail: Some(format!("detail {at}")), ..event(user, kind, at) }
}

fn new_client(user: &str, id: &str, at: u64) -> Event {
    Event { actor: "gateway".into(), ..password_event(user, EventKind::NewClient, at, id) }
}

fn expired(p: &AppPassword, at: u64) -> Event {
    Event { actor: "expiry".into(), ..password_event(&p.user, EventKind::PasswordExpired, at, &p.id) }
}

fn login(user: &str) -> Login {
    Login {
        user: user.into(),
        password_hash: Some(Secret::new(format!("$argon2id$v=19$m=19456,t=2,p=1$bG9naW4$for-{user}"))),
        totp: Some(Totp {
            secret: Secret::new("JBSWY3DPEHPK3PXP".into()),
            recovery: vec![Secret::new("a".repeat(64)), Secret::new("b".repeat(64))],
            last_step: 58_000_000,
        }),
        changed: 1_700_000_000,
    }
}

fn token(id: &str) -> AdminToken {
    AdminToken { id: id.into(), name: format!("token {id}"), hash: Secret::new(format!("{id:0>64}")), created: 42 }
}

fn ids(ids: &[&str]) -> Vec<AppPasswordId> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn password_ids(list: &[AppPassword]) -> Vec<&str> {
    list.iter().map(|p| p.id.as_str()).collect()
}

fn names(list: &[User]) -> Vec<&str> {
    list.iter().map(|u| u.name.as_str()).collect()
}

/// Everything, newest first.
fn all_events() -> EventQuery {
    EventQuery { limit: 1000, ..Default::default() }
}

fn events_of(user: &str) -> EventQuery {
    EventQuery { user: Some(user.into()), ..all_events() }
}

fn times(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.at).collect()
}

async fn add_user(store: &dyn Store, name: &str) {
    store.insert_user(&user(name), &[]).await.unwrap();
}

async fn add_password(store: &dyn Store, p: &AppPassword) {
    store.insert_password(p, &[]).await.unwrap();
}

// ---------------------------------------------------------------- checks

async fn users_are_inserted_updated_and_listed(store: Arc<dyn Store>) {
    assert_eq!(store.list_users().await.unwrap(), []);
    for name in ["carol", "alice", "bob"] {
        add_user(&*store, name).await;
    }
    assert_eq!(store.get_user("alice").await.unwrap(), Some(user("alice")));
    assert_eq!(store.get_user("nobody").await.unwrap(), None);
    assert_eq!(store.get_user("alic").await.unwrap(), None, "names are matched whole");

    let taken = User { app_access: false, created: 999, ..user("alice") };
    assert!(matches!(store.insert_user(&taken, &[]).await, Err(StoreError::Conflict)));
    assert_eq!(store.get_user("alice").await.unwrap(), Some(user("alice")), "a conflict changes nothing");

    let disabled = User { state: UserState::Disabled, app_access: false, ..user("bob") };
    store.update_user(&disabled, &[]).await.unwrap();
    assert_eq!(store.get_user("bob").await.unwrap(), Some(disabled.clone()));
    let users = store.list_users().await.unwrap();
    assert_eq!(names(&users), ["alice", "bob", "carol"], "listed by name");
    assert_eq!(users[1], disabled);
}

async fn removing_a_user_removes_everything_of_theirs_only(store: Arc<dyn Store>) {
    for name in ["alice", "bob"] {
        add_user(&*store, name).await;
        store.put_login(&login(name), &[]).await.unwrap();
    }
    let (a1, a2, b1) =
        (password("aaaa1", "alice", 10), detailed_password("aaaa2", "alice"), password("bbbb1", "bob", 10));
    for p in [&a1, &a2, &b1] {
        add_password(&*store, p).await;
        store.append_event(&password_event(&p.user, EventKind::PasswordCreated, 20, &p.id)).await.unwrap();
    }
    store.append_event(&event("alice", EventKind::SignedIn, 25)).await.unwrap();
    store
        .record_activity(
            &[(a1.id.clone(), activity(30, "192.0.2.1")), (b1.id.clone(), activity(31, "192.0.2.2"))],
            &[new_client("alice", &a1.id, 30), new_client("bob", &b1.id, 31)],
        )
        .await
        .unwrap();
    assert_eq!(store.list_events(&events_of("alice")).await.unwrap().len(), 4);

    assert!(store.remove_user("alice").await.unwrap());
    assert!(!store.remove_user("alice").await.unwrap(), "already gone");
    assert!(!store.remove_user("nobody").await.unwrap());

    assert_eq!(store.get_user("alice").await.unwrap(), None);
    assert_eq!(names(&store.list_users().await.unwrap()), ["bob"]);
    for p in [&a1, &a2] {
        assert_eq!(store.get_password(&p.id).await.unwrap(), None);
    }
    assert_eq!(store.list_passwords("alice").await.unwrap(), []);
    assert_eq!(store.list_all_passwords().await.unwrap(), std::slice::from_ref(&b1));
    assert_eq!(store.get_activity(&ids(&["aaaa1", "bbbb1"])).await.unwrap(), [None, Some(activity(31, "192.0.2.2"))]);
    assert_eq!(store.list_events(&events_of("alice")).await.unwrap(), []);
    let left = store.list_events(&all_events()).await.unwrap();
    assert_eq!(left, [new_client("bob", &b1.id, 31), password_event("bob", EventKind::PasswordCreated, 20, &b1.id)]);
    assert_eq!(store.get_login("alice").await.unwrap(), None);
    assert_eq!(store.get_login("bob").await.unwrap(), Some(login("bob")));
    assert_eq!(store.get_user("bob").await.unwrap(), Some(user("bob")));

    // The name can be taken again, with nothing of the old account.
    add_user(&*store, "alice").await;
    assert_eq!(store.list_passwords("alice").await.unwrap(), []);
    assert_eq!(store.list_events(&events_of("alice")).await.unwrap(), []);
    assert_eq!(store.get_login("alice").await.unwrap(), None);
}

async fn passwords_are_inserted_updated_and_read(store: Arc<dyn Store>) {
    for name in ["alice", "bob"] {
        add_user(&*store, name).await;
    }
    let (p1, p2, p3) =
        (password("ppp11", "alice", 10), detailed_password("ppp22", "alice"), password("ppp33", "bob", 5));
    for p in [&p1, &p2, &p3] {
        add_password(&*store, p).await;
    }
    assert_eq!(store.get_password("ppp11").await.unwrap(), Some(p1.clone()));
    assert_eq!(store.get_password("ppp22").await.unwrap(), Some(p2.clone()), "every field round-trips");
    assert_eq!(store.get_password("nope9").await.unwrap(), None);

    let clash = password("ppp11", "bob", 77);
    assert!(matches!(store.insert_password(&clash, &[]).await, Err(StoreError::Conflict)));
    assert_eq!(store.get_password("ppp11").await.unwrap(), Some(p1.clone()), "a conflict changes nothing");
    assert_eq!(password_ids(&store.list_passwords("bob").await.unwrap()), ["ppp33"]);

    let revoked = AppPassword { revoked: Some(Revocation { at: 50, by: "user".into(), reason: None }), ..p1.clone() };
    let renamed = AppPassword { name: "tablet".into(), expires: Some(9_000), ..p2.clone() };
    let recorded = AppPassword { expires: Some(1), expiry_recorded: true, ..p3.clone() };
    store.update_passwords(&[revoked.clone(), renamed.clone(), recorded.clone()], &[]).await.unwrap();
    assert_eq!(store.get_password("ppp11").await.unwrap(), Some(revoked.clone()));
    assert_eq!(store.get_password("ppp22").await.unwrap(), Some(renamed.clone()));
    assert_eq!(store.get_password("ppp33").await.unwrap(), Some(recorded.clone()));
    assert_eq!(store.list_passwords("alice").await.unwrap(), [revoked.clone(), renamed.clone()]);
    assert_eq!(store.list_all_passwords().await.unwrap(), [revoked, renamed, recorded]);

    store.update_passwords(&[], &[]).await.unwrap();
}

async fn passwords_are_listed_per_user_in_creation_order(store: Arc<dyn Store>) {
    for name in ["alice", "bob"] {
        add_user(&*store, name).await;
    }
    // Inserted out of order; equal creation times are ordered by id.
    for (id, user, created) in [
        ("aaaaa", "alice", 30),
        ("mmmmm", "alice", 20),
        ("zzzzz", "alice", 10),
        ("ccccc", "bob", 1),
        ("bbbbb", "alice", 20),
    ] {
        add_password(&*store, &password(id, user, created)).await;
    }
    let alice = store.list_passwords("alice").await.unwrap();
    assert_eq!(password_ids(&alice), ["zzzzz", "bbbbb", "mmmmm", "aaaaa"]);
    assert_eq!(alice[1], password("bbbbb", "alice", 20));
    assert_eq!(password_ids(&store.list_passwords("bob").await.unwrap()), ["ccccc"]);
    assert_eq!(store.list_passwords("nobody").await.unwrap(), []);
    assert_eq!(store.list_passwords("alic").await.unwrap(), [], "users are matched whole");
    let all = store.list_all_passwords().await.unwrap();
    assert_eq!(password_ids(&all), ["aaaaa", "bbbbb", "ccccc", "mmmmm", "zzzzz"], "every user's, by id");
}

async fn newly_expired_lists_only_what_the_sweep_must_record(store: Arc<dyn Store>) {
    add_user(&*store, "alice").await;
    let now = 1_000;
    let revoked = Revocation { at: 5, by: "admin".into(), reason: None };
    let candidates = [
        password("never", "alice", 10),
        expiring("later", "alice", now + 1),
        expiring("xpast", "alice", now - 100),
        expiring("xnow0", "alice", now),
        AppPassword { revoked: Some(revoked), ..expiring("rvokd", "alice", now - 100) },
        AppPassword { expiry_recorded: true, ..expiring("recrd", "alice", now - 100) },
    ];
    for p in &candidates {
        add_password(&*store, p).await;
    }
    let mut due = store.list_newly_expired(now).await.unwrap();
    due.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(due, [candidates[3].clone(), candidates[2].clone()], "expired at or before now, nothing else");
    assert_eq!(store.list_newly_expired(now - 101).await.unwrap(), []);
    assert_eq!(store.list_newly_expired(now + 1).await.unwrap().len(), 3, "`later` expires at now + 1");

    // Recorded (by the sweep) or revoked (by the user): no longer due.
    let recorded = AppPassword { expiry_recorded: true, ..candidates[2].clone() };
    store.record_expiry(&recorded, &expired(&recorded, now)).await.unwrap();
    let revoked_now =
        AppPassword { revoked: Some(Revocation { at: now, by: "user".into(), reason: None }), ..candidates[3].clone() };
    store.update_passwords(&[revoked_now], &[]).await.unwrap();
    assert_eq!(store.list_newly_expired(now).await.unwrap(), []);
}

async fn activity_keeps_the_latest_time(store: Arc<dyn Store>) {
    add_user(&*store, "alice").await;
    add_password(&*store, &password("actv1", "alice", 1)).await;
    let id = ids(&["actv1"]);
    let latest = |store: Arc<dyn Store>| async move { store.get_activity(&ids(&["actv1"])).await.unwrap() };

    store.record_activity(&[(id[0].clone(), activity(200, "192.0.2.1"))], &[]).await.unwrap();
    assert_eq!(latest(store.clone()).await, [Some(activity(200, "192.0.2.1"))]);
    store.record_activity(&[(id[0].clone(), activity(100, "192.0.2.2"))], &[]).await.unwrap();
    assert_eq!(latest(store.clone()).await, [Some(activity(200, "192.0.2.1"))], "an older flush arriving late loses");
    store.record_activity(&[(id[0].clone(), activity(300, "2001:db8::3"))], &[]).await.unwrap();
    assert_eq!(latest(store.clone()).await, [Some(activity(300, "2001:db8::3"))]);
    // Within one batch too, whatever the order.
    let batch = [
        (id[0].clone(), activity(500, "192.0.2.5")),
        (id[0].clone(), activity(400, "192.0.2.4")),
        (id[0].clone(), activity(350, "192.0.2.3")),
    ];
    store.record_activity(&batch, &[]).await.unwrap();
    assert_eq!(latest(store.clone()).await, [Some(activity(500, "192.0.2.5"))]);

    // A user agent-less activity round-trips as such.
    let bare = Activity { user_agent: None, ..activity(600, "192.0.2.6") };
    store.record_activity(&[(id[0].clone(), bare.clone())], &[]).await.unwrap();
    assert_eq!(latest(store.clone()).await, [Some(bare)]);

    store.record_activity(&[], &[]).await.unwrap();
    assert_eq!(store.get_activity(&[]).await.unwrap(), []);
}

async fn activity_and_its_events_need_an_existing_password(store: Arc<dyn Store>) {
    add_user(&*store, "alice").await;
    let p = password("there", "alice", 1);
    add_password(&*store, &p).await;

    // A password that never existed.
    store
        .record_activity(&[("ghost".into(), activity(10, "192.0.2.9"))], &[new_client("alice", "ghost", 10)])
        .await
        .unwrap();
    assert_eq!(store.get_activity(&ids(&["ghost"])).await.unwrap(), [None]);
    assert_eq!(store.list_events(&all_events()).await.unwrap(), []);

    // A batch mixing a live password with one removed meanwhile.
    store
        .record_activity(
            &[("there".into(), activity(20, "192.0.2.1")), ("ghost".into(), activity(21, "192.0.2.9"))],
            &[new_client("alice", "there", 20), new_client("alice", "ghost", 21)],
        )
        .await
        .unwrap();
    assert_eq!(store.get_activity(&ids(&["there", "ghost"])).await.unwrap(), [Some(activity(20, "192.0.2.1")), None]);
    let listed = store.list_events(&events_of("alice")).await.unwrap();
    assert_eq!(listed, [new_client("alice", "there", 20)], "the new-client event is listed, the orphan one is not");
    let query = EventQuery { kinds: vec![EventKind::NewClient], ..all_events() };
    assert_eq!(store.list_events(&query).await.unwrap(), listed);

    // Several new clients in one flush, newest (last passed) first.
    let more = [new_client("alice", "there", 30), new_client("alice", "there", 31)];
    store.record_activity(&[("there".into(), activity(31, "192.0.2.7"))], &more).await.unwrap();
    let listed = store.list_events(&events_of("alice")).await.unwrap();
    assert_eq!(times(&listed), [31, 30, 20]);
}

async fn activity_is_read_in_the_order_asked(store: Arc<dyn Store>) {
    add_user(&*store, "alice").await;
    for id in ["one11", "two22", "three"] {
        add_password(&*store, &password(id, "alice", 1)).await;
    }
    store
        .record_activity(&[("two22".into(), activity(2, "192.0.2.2")), ("one11".into(), activity(1, "192.0.2.1"))], &[])
        .await
        .unwrap();
    let got = store.get_activity(&ids(&["unknw", "two22", "three", "one11"])).await.unwrap();
    assert_eq!(got, [None, Some(activity(2, "192.0.2.2")), None, Some(activity(1, "192.0.2.1"))]);
    let got = store.get_activity(&ids(&["one11", "two22"])).await.unwrap();
    assert_eq!(got, [Some(activity(1, "192.0.2.1")), Some(activity(2, "192.0.2.2"))]);
}

async fn events_are_listed_newest_first_and_filtered(store: Arc<dyn Store>) {
    for name in ["alice", "bob"] {
        add_user(&*store, name).await;
    }
    let history = [
        event("alice", EventKind::UserCreated, 10),
        event("bob", EventKind::UserCreated, 15),
        password_event("alice", EventKind::PasswordCreated, 20, "pw111"),
        event("alice", EventKind::SignedIn, 30),
        password_event("bob", EventKind::PasswordCreated, 35, "pw222"),
        password_event("alice", EventKind::PasswordRevoked, 40, "pw111"),
        Event { actor: "token:abc".into(), ..event("alice", EventKind::AppAccessOff, 50) },
        event("alice", EventKind::SignInFailed, 60),
    ];
    for e in &history {
        store.append_event(e).await.unwrap();
    }
    let newest_first = |user: Option<&str>| -> Vec<Event> {
        history.iter().rev().filter(|e| user.is_none_or(|u| e.user == u)).cloned().collect()
    };
    let list = |query: EventQuery| {
        let store = store.clone();
        async move { store.list_events(&query).await.unwrap() }
    };

    assert_eq!(list(events_of("alice")).await, newest_first(Some("alice")), "whole records, newest first");
    assert_eq!(list(events_of("bob")).await, newest_first(Some("bob")));
    assert_eq!(list(events_of("nobody")).await, []);
    assert_eq!(list(events_of("ali")).await, [], "users are matched whole");
    assert_eq!(list(all_events()).await, newest_first(None), "every user's, newest first");

    let kinds = vec![EventKind::PasswordCreated, EventKind::PasswordRevoked];
    assert_eq!(times(&list(EventQuery { kinds: kinds.clone(), ..events_of("alice") }).await), [40, 20]);
    assert_eq!(times(&list(EventQuery { kinds, ..all_events() }).await), [40, 35, 20]);
    assert_eq!(list(EventQuery { kinds: vec![EventKind::TotpEnabled], ..all_events() }).await, []);

    // `since` is inclusive, `until` exclusive.
    assert_eq!(times(&list(EventQuery { since: Some(30), ..events_of("alice") }).await), [60, 50, 40, 30]);
    assert_eq!(times(&list(EventQuery { until: Some(30), ..events_of("alice") }).await), [20, 10]);
    let window = EventQuery { since: Some(20), until: Some(50), ..all_events() };
    assert_eq!(times(&list(window.clone()).await), [40, 35, 30, 20]);
    assert_eq!(list(EventQuery { since: Some(61), ..all_events() }).await, []);

    // Paging applies after the filters.
    assert_eq!(times(&list(EventQuery { offset: 1, limit: 2, ..events_of("alice") }).await), [50, 40]);
    assert_eq!(times(&list(EventQuery { offset: 1, limit: 2, ..window.clone() }).await), [35, 30]);
    assert_eq!(times(&list(EventQuery { offset: 3, limit: 10, ..window }).await), [20]);
    assert_eq!(times(&list(EventQuery { limit: 3, ..all_events() }).await), [60, 50, 40]);
    assert_eq!(times(&list(EventQuery { offset: 1, limit: 1, ..events_of("bob") }).await), [15]);
    assert_eq!(list(EventQuery { offset: 8, ..all_events() }).await, []);
    let filtered = EventQuery { kinds: vec![EventKind::UserCreated], offset: 1, limit: 5, ..all_events() };
    assert_eq!(list(filtered).await, [event("alice", EventKind::UserCreated, 10)]);

    // Newest means last appended, whatever the times say.
    store.append_event(&event("bob", EventKind::UserDisabled, 1)).await.unwrap();
    assert_eq!(times(&list(EventQuery { limit: 2, ..all_events() }).await), [1, 60]);
    assert_eq!(times(&list(events_of("bob")).await), [1, 35, 15]);
}

async fn expiry_is_recorded_once_with_its_event(store: Arc<dyn Store>) {
    add_user(&*store, "alice").await;
    let p = expiring("xpire", "alice", 500);
    add_password(&*store, &p).await;
    let expired_events = EventQuery { kinds: vec![EventKind::PasswordExpired], ..all_events() };

    let recorded = AppPassword { expiry_recorded: true, ..p.clone() };
    store.record_expiry(&recorded, &expired(&p, 600)).await.unwrap();
    assert_eq!(store.get_password("xpire").await.unwrap(), Some(recorded.clone()));
    assert_eq!(store.list_events(&events_of("alice")).await.unwrap(), [expired(&p, 600)]);
    assert_eq!(store.list_newly_expired(600).await.unwrap(), []);

    // A second sweep (another instance, or a retry) writes nothing.
    let again = AppPassword { name: "renamed by a late sweep".into(), ..recorded.clone() };
    store.record_expiry(&again, &expired(&p, 700)).await.unwrap();
    assert_eq!(store.get_password("xpire").await.unwrap(), Some(recorded));
    assert_eq!(store.list_events(&expired_events).await.unwrap(), [expired(&p, 600)]);

    // Recorded elsewhere before this instance got to it.
    let done = AppPassword { expiry_recorded: true, ..expiring("done0", "alice", 500) };
    add_password(&*store, &done).await;
    let late = AppPassword { name: "late".into(), ..done.clone() };
    store.record_expiry(&late, &expired(&done, 800)).await.unwrap();
    assert_eq!(store.get_password("done0").await.unwrap(), Some(done));
    assert_eq!(store.list_events(&expired_events).await.unwrap(), [expired(&p, 600)], "no second event");
}

async fn expiry_of_a_removed_password_writes_nothing(store: Arc<dyn Store>) {
    for name in ["alice", "carol"] {
        add_user(&*store, name).await;
    }
    let gone = AppPassword { expiry_recorded: true, ..expiring("gone0", "carol", 500) };
    add_password(&*store, &AppPassword { expiry_recorded: false, ..gone.clone() }).await;
    assert!(store.remove_user("carol").await.unwrap());
    store.record_expiry(&gone, &expired(&gone, 600)).await.unwrap();
    assert_eq!(store.get_password("gone0").await.unwrap(), None);
    assert_eq!(store.list_passwords("carol").await.unwrap(), []);
    assert_eq!(store.list_events(&all_events()).await.unwrap(), []);

    // Never existed at all (alice exists, the password does not).
    let never = AppPassword { expiry_recorded: true, ..expiring("never", "alice", 500) };
    store.record_expiry(&never, &expired(&never, 600)).await.unwrap();
    assert_eq!(store.get_password("never").await.unwrap(), None);
    assert_eq!(store.list_all_passwords().await.unwrap(), []);
    assert_eq!(store.list_events(&all_events()).await.unwrap(), []);
}

async fn logins_are_put_and_replaced(store: Arc<dyn Store>) {
    for name in ["alice", "bob"] {
        add_user(&*store, name).await;
    }
    assert_eq!(store.get_login("alice").await.unwrap(), None);
    store.put_login(&login("alice"), &[]).await.unwrap();
    assert_eq!(store.get_login("alice").await.unwrap(), Some(login("alice")), "TOTP and recovery codes round-trip");
    assert_eq!(store.get_login("bob").await.unwrap(), None);

    let replaced = Login {
        password_hash: Some(Secret::new("$argon2id$v=19$m=19456,t=2,p=1$bmV3$changed".into())),
        totp: None,
        changed: 1_800_000_000,
        ..login("alice")
    };
    store.put_login(&replaced, &[]).await.unwrap();
    assert_eq!(store.get_login("alice").await.unwrap(), Some(replaced.clone()));

    let bare = Login { user: "bob".into(), ..Login::default() };
    store.put_login(&bare, &[]).await.unwrap();
    assert_eq!(store.get_login("bob").await.unwrap(), Some(bare));
    assert_eq!(store.get_login("alice").await.unwrap(), Some(replaced), "logins are per user");
}

async fn admin_tokens_are_inserted_listed_and_removed(store: Arc<dyn Store>) {
    assert_eq!(store.list_admin_tokens().await.unwrap(), []);
    for id in ["tok2", "tok1", "tok3"] {
        store.insert_admin_token(&token(id)).await.unwrap();
    }
    let clash = AdminToken { name: "impostor".into(), ..token("tok1") };
    assert!(matches!(store.insert_admin_token(&clash).await, Err(StoreError::Conflict)));
    assert_eq!(store.list_admin_tokens().await.unwrap(), [token("tok1"), token("tok2"), token("tok3")], "by id");

    assert!(store.remove_admin_token("tok1").await.unwrap());
    assert!(!store.remove_admin_token("tok1").await.unwrap(), "already gone");
    assert!(!store.remove_admin_token("tok9").await.unwrap());
    assert_eq!(store.list_admin_tokens().await.unwrap(), [token("tok2"), token("tok3")]);
}

async fn writes_are_counted_and_reads_are_not(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    let mut count = store.write_count();
    let mut wrote = |store: &Arc<dyn Store>, what: &str| {
        let now = store.write_count();
        assert!(now > count, "{what} is an acknowledged write: count {count} -> {now}");
        count = now;
    };

    let p = expiring("count", "alice", 5);
    store.insert_user(&user("alice"), &[]).await.unwrap();
    wrote(&store, "insert_user");
    store.update_user(&User { app_access: false, ..user("alice") }, &[]).await.unwrap();
    wrote(&store, "update_user");
    store.insert_password(&p, &[]).await.unwrap();
    wrote(&store, "insert_password");
    store.update_passwords(&[AppPassword { name: "x".into(), ..p.clone() }], &[]).await.unwrap();
    wrote(&store, "update_passwords");
    store.record_activity(&[(p.id.clone(), activity(7, "192.0.2.1"))], &[new_client("alice", &p.id, 7)]).await.unwrap();
    wrote(&store, "record_activity");
    store.append_event(&event("alice", EventKind::SignedIn, 8)).await.unwrap();
    wrote(&store, "append_event");
    let recorded = AppPassword { expiry_recorded: true, ..p.clone() };
    store.record_expiry(&recorded, &expired(&p, 9)).await.unwrap();
    wrote(&store, "record_expiry");
    store.put_login(&login("alice"), &[]).await.unwrap();
    wrote(&store, "put_login");
    store.insert_admin_token(&token("tok1")).await.unwrap();
    wrote(&store, "insert_admin_token");
    assert!(store.remove_admin_token("tok1").await.unwrap());
    wrote(&store, "remove_admin_token");

    let before_reads = store.write_count();
    store.ping().await.unwrap();
    store.get_user("alice").await.unwrap();
    store.list_users().await.unwrap();
    store.get_password(&p.id).await.unwrap();
    store.list_passwords("alice").await.unwrap();
    store.list_all_passwords().await.unwrap();
    store.list_newly_expired(100).await.unwrap();
    store.get_activity(std::slice::from_ref(&p.id)).await.unwrap();
    store.list_events(&all_events()).await.unwrap();
    store.get_login("alice").await.unwrap();
    store.list_admin_tokens().await.unwrap();
    assert_eq!(store.write_count(), before_reads, "reads are not writes");

    assert!(store.remove_user("alice").await.unwrap());
    wrote(&store, "remove_user");
}

async fn account_writes_and_their_events_land_together_or_not_at_all(store: Arc<dyn Store>) {
    let created = [event("alice", EventKind::UserCreated, 1)];
    store.insert_user(&user("alice"), &created).await.unwrap();
    let taken = [event("alice", EventKind::UserCreated, 2)];
    assert!(matches!(store.insert_user(&user("alice"), &taken).await, Err(StoreError::Conflict)));
    let p = password("pppp1", "alice", 3);
    let added = [Event { password_id: Some(p.id.clone()), ..event("alice", EventKind::PasswordCreated, 3) }];
    store.insert_password(&p, &added).await.unwrap();
    assert!(matches!(store.insert_password(&p, &added).await, Err(StoreError::Conflict)));
    let disabled = User { state: UserState::Disabled, ..user("alice") };
    store.update_user(&disabled, &[event("alice", EventKind::UserDisabled, 4)]).await.unwrap();
    let revoked = AppPassword { revoked: Some(Revocation { at: 5, by: "cli".into(), reason: None }), ..p.clone() };
    store.update_passwords(&[revoked], &[event("alice", EventKind::PasswordsRevokedAll, 5)]).await.unwrap();
    let kinds: Vec<EventKind> = store.list_events(&all_events()).await.unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::PasswordsRevokedAll, EventKind::UserDisabled, EventKind::PasswordCreated, EventKind::UserCreated],
        "one event per write; none for a refused insert"
    );
}

async fn a_revocation_is_never_undone_by_a_later_update(store: Arc<dyn Store>) {
    add_user(&*store, "alice").await;
    let p = password("pppp1", "alice", 3);
    add_password(&*store, &p).await;
    // Another instance read `p` before the revocation and renames it after.
    let revoked = AppPassword { revoked: Some(Revocation { at: 5, by: "cli".into(), reason: None }), ..p.clone() };
    store.update_passwords(std::slice::from_ref(&revoked), &[]).await.unwrap();
    store.update_passwords(&[AppPassword { name: "renamed".into(), ..p.clone() }], &[]).await.unwrap();
    assert_eq!(store.get_password("pppp1").await.unwrap(), Some(revoked), "still revoked");
}

// ---------------------------------------------------------------- PostgreSQL only

/// Every write that must end cached access elsewhere reaches another
/// instance's change feed, within a second of being acknowledged.
#[tokio::test]
async fn postgres_account_changes_reach_every_instance() {
    use davgate::store::{Change, FeedEvent};
    let url = PgCluster::shared().create_database();
    let (a, b) = (open_pg(&url).await, open_pg(&url).await);
    let mut feed = b.follow_changes(Duration::from_secs(1)).expect("PostgreSQL has a change feed");
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.unwrap(), Some(FeedEvent::Resumed));
    let mut next = async || tokio::time::timeout(Duration::from_secs(1), feed.recv()).await.expect("within 1 s");
    for name in ["alice", "bob"] {
        add_user(&*a, name).await;
    }
    let (p1, p2) = (expiring("pppp1", "alice", 10), password("pppp2", "alice", 10));
    add_password(&*a, &p1).await;
    add_password(&*a, &p2).await;

    let revoked = AppPassword { revoked: Some(Revocation { at: 5, by: "cli".into(), reason: None }), ..p2.clone() };
    a.update_passwords(&[revoked], &[]).await.unwrap();
    assert_eq!(next().await, Some(FeedEvent::Changed(Change::Password("pppp2".into()))), "revoke");
    let expired = AppPassword { expiry_recorded: true, ..p1.clone() };
    a.record_expiry(&expired, &event("alice", EventKind::PasswordExpired, 10)).await.unwrap();
    assert_eq!(next().await, Some(FeedEvent::Changed(Change::Password("pppp1".into()))), "expiry");
    a.update_user(&User { app_access: false, ..user("alice") }, &[]).await.unwrap();
    assert_eq!(next().await, Some(FeedEvent::Changed(Change::User("alice".into()))), "app access off");
    assert!(a.remove_user("bob").await.unwrap());
    assert_eq!(next().await, Some(FeedEvent::Changed(Change::User("bob".into()))), "removal");
}

/// Two instances flushing activity for the same password: the latest time
/// wins, whichever flushes last.
#[tokio::test]
async fn postgres_instances_merge_activity_latest_time_wins() {
    let url = PgCluster::shared().create_database();
    let (a, b) = (open_pg(&url).await, open_pg(&url).await);
    add_user(&*a, "alice").await;
    add_password(&*a, &password("share", "alice", 1)).await;
    assert_eq!(b.get_password("share").await.unwrap(), Some(password("share", "alice", 1)), "one database");
    let id: AppPasswordId = "share".into();
    let both = |want: Activity| {
        let (a, b, id) = (a.clone(), b.clone(), id.clone());
        async move {
            for store in [a, b] {
                assert_eq!(store.get_activity(std::slice::from_ref(&id)).await.unwrap(), [Some(want.clone())]);
            }
        }
    };

    a.record_activity(&[(id.clone(), activity(200, "192.0.2.1"))], &[]).await.unwrap();
    b.record_activity(&[(id.clone(), activity(100, "192.0.2.2"))], &[]).await.unwrap();
    both(activity(200, "192.0.2.1")).await;
    b.record_activity(&[(id.clone(), activity(300, "192.0.2.2"))], &[]).await.unwrap();
    a.record_activity(&[(id.clone(), activity(250, "192.0.2.1"))], &[]).await.unwrap();
    both(activity(300, "192.0.2.2")).await;

    // Flushing at the same moment: still the latest of all.
    let mut flushes = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let (store, id) = (if i % 2 == 0 { a.clone() } else { b.clone() }, id.clone());
        flushes
            .spawn(async move { store.record_activity(&[(id, activity(400 + (i * 5) % 8, "192.0.2.9"))], &[]).await });
    }
    while let Some(flushed) = flushes.join_next().await {
        flushed.unwrap().unwrap();
    }
    both(activity(407, "192.0.2.9")).await;
}

/// The database going down fails operations as `Unavailable` within the
/// store timeout, and the same store works again once it is back.
#[tokio::test]
async fn postgres_down_is_unavailable_then_recovers() {
    let cluster = PgCluster::start();
    let url = cluster.create_database();
    let config = StoreConfig { timeout: Duration::from_secs(2), ..StoreConfig::postgres(&url) };
    let store = davgate::store::open(&config).await.unwrap();
    add_user(&*store, "alice").await;

    cluster.stop();
    let started = Instant::now();
    let err = store.get_user("alice").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast: {:?}", started.elapsed());

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.get_user("alice").await.unwrap(), Some(user("alice")), "nothing acknowledged was lost");
    add_user(&*store, "bob").await;
}
