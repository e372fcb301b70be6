//! Valid clients during a wrong-password flood (run: `bench/flood.sh`).
//!
//! davgate, a tiny backend and all clients run in this one process on
//! 127.0.0.1. Eight valid clients with cached credentials loop on
//! keep-alive GETs; meanwhile 64 flood connections loop on well-formed but
//! wrong passwords. Scenarios, interleaved over rounds:
//!
//! - `alone`:        valid clients only (the baseline);
//! - `flood-1-ip`:   the flood from one address (the throttle's case);
//! - `flood-many-ip`: every flood request from a new address and a random
//!   user (via a trusted X-Forwarded-For), so each one costs an argon2 run.
//!
//! Prints valid requests per second, failed valid requests, the ratio to
//! the baseline, and what the flood got back.

use bytes::Bytes;
use davgate::config::Config;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const VALID_CLIENTS: usize = 8;
const FLOOD_CONNECTIONS: usize = 64;
const PHASE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let ok = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok\n"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), ok).await;
            });
        }
    });
    addr
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn random_secret() -> String {
    let p = davgate::password::generate();
    p.expose()[6..].to_string()
}

async fn get(client: &Http, url: &str, auth: &str, forwarded_for: Option<String>) -> Option<u16> {
    let mut req = http::Request::get(url).header("authorization", auth);
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let res = client.request(req.body(Empty::new()).unwrap()).await.ok()?;
    let status = res.status().as_u16();
    res.into_body().collect().await.ok()?;
    Some(status)
}

struct Outcome {
    valid_per_sec: f64,
    valid_failed: u64,
    flood: BTreeMap<u16, u64>,
}

async fn phase(url: &str, valid: &[(String, String)], flood: Option<(bool, String)>) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (user, pw) in valid {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.to_string());
        let auth = basic(user, pw);
        tasks.push(tokio::spawn(async move {
            let client: Http = Client::builder(TokioExecutor::new()).build_http();
            while !stop.load(Ordering::Relaxed) {
                match get(&client, &url, &auth, None).await {
                    Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let flood_statuses = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    if let Some((many_addresses, id)) = flood {
        for n in 0..FLOOD_CONNECTIONS {
            let (stop, url, id, statuses) = (stop.clone(), url.to_string(), id.clone(), flood_statuses.clone());
            tasks.push(tokio::spawn(async move {
                let client: Http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build_http();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let (user, ip) = if many_addresses {
                        (format!("user{n}x{i}"), Some(format!("10.{}.{}.{}", n, i >> 8 & 255, i & 255)))
                    } else {
                        ("alice".to_string(), None)
                    };
                    let status = get(&client, &url, &basic(&user, &format!("{id}-{}", random_secret())), ip).await;
                    *statuses.lock().unwrap().entry(status.unwrap_or(0)).or_insert(0) += 1;
                }
            }));
        }
    }
    // Let connections open and the flood reach its steady state first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok0, failed0) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let started = Instant::now();
    tokio::time::sleep(PHASE).await;
    let elapsed = started.elapsed().as_secs_f64();
    let outcome = Outcome {
        valid_per_sec: (ok.load(Ordering::Relaxed) - ok0) as f64 / elapsed,
        valid_failed: failed.load(Ordering::Relaxed) - failed0,
        flood: flood_statuses.lock().unwrap().clone(),
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    outcome
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let upstream = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n[upstream]\nurl = \"http://{upstream}\"\n[store]\npath = \"{}\"\n",
        dir.path().join("store").display()
    );
    let config = Config::parse(&text, "bench.toml").unwrap();
    let store = davgate::store::open(&config.store).await.unwrap();
    let app = davgate::App::new(config, store).unwrap();
    let sockets =
        davgate::server::listen::bind("127.0.0.1:0".parse().unwrap(), app.config().server.worker_count()).unwrap();
    let url = format!("http://{}/alice/", sockets.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(davgate::run(app.clone(), davgate::Listeners::gateway_only(sockets), stopped));

    app.accounts.add_user("alice", "bench").await.unwrap();
    let mut valid = Vec::new();
    for i in 0..VALID_CLIENTS {
        let new = davgate::accounts::NewPassword { name: format!("client {i}"), ..Default::default() };
        let created = app.accounts.create_password("alice", new, "bench").await.unwrap();
        valid.push(("alice".to_string(), created.password.expose().clone()));
    }
    // The flood uses a real id with wrong secrets: the costliest guess.
    let target_id = valid[0].1[..5].to_string();

    let scenarios: [(&str, Option<bool>); 3] =
        [("alone", None), ("flood-1-ip", Some(false)), ("flood-many-ip", Some(true))];
    let mut results: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    for round in 0..ROUNDS {
        for (name, flood) in scenarios {
            let o = phase(&url, &valid, flood.map(|many| (many, target_id.clone()))).await;
            eprintln!(
                "round {round} {name}: {:.0} valid req/s, {} failed, flood {:?}",
                o.valid_per_sec, o.valid_failed, o.flood
            );
            results.entry(name).or_default().push(o);
        }
    }
    let base = median(results["alone"].iter().map(|o| o.valid_per_sec).collect());
    println!(
        "| scenario | valid req/s (median of {ROUNDS}, min..max) | ratio to alone | failed valid requests | flood answers (all rounds) |"
    );
    println!("|---|---|---|---|---|");
    for (name, _) in scenarios {
        let runs = &results[name];
        let rates: Vec<f64> = runs.iter().map(|o| o.valid_per_sec).collect();
        let (min, max) = (rates.iter().cloned().fold(f64::MAX, f64::min), rates.iter().cloned().fold(0.0, f64::max));
        let med = median(rates);
        let failed: u64 = runs.iter().map(|o| o.valid_failed).sum();
        let mut flood: BTreeMap<u16, u64> = BTreeMap::new();
        for o in runs {
            for (s, n) in &o.flood {
                *flood.entry(*s).or_insert(0) += n;
            }
        }
        println!("| {name} | {med:.0} ({min:.0}..{max:.0}) | {:.2} | {failed} | {flood:?} |", med / base);
    }
    println!("argon2 verifications in all: {}", app.verifier.pool().verifications());
}
