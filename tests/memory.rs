//! A 1 GiB PUT and a 1 GiB GET stream through davgate with its memory
//! growing by less than 32 MiB (measured on the real binary's RSS).

mod common;

use bytes::Bytes;
use common::Recorder;
use common::binary::Setup;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

const GIB: u64 = 1 << 30;
const LIMIT_KIB: u64 = 32 * 1024;

fn upload(total: u64) -> BoxBody<Bytes, std::io::Error> {
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    StreamBody::new(futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let n = left.min(chunk.len() as u64);
                (Ok(Frame::data(chunk.slice(..n as usize))), left - n)
            })
        }
    }))
    .boxed()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_gib_put_and_get_stream_with_bounded_memory() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let (_, pw) = setup.user_with_password("alice");
    let server = setup.serve();
    let auth = common::client::basic("alice", &pw);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();

    // Warm up: first verification, pools and buffers in place.
    let warm = http::Request::get(server.url("/warm")).header("authorization", &auth).body(upload(0)).unwrap();
    assert_eq!(client.request(warm).await.unwrap().status(), 200);
    let baseline = server.memory_kib("VmRSS");
    // The warm-up's argon2 run peaked at ~19 MiB: start the peak from here.
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").unwrap();

    let put = http::Request::put(server.url("/sink/big"))
        .header("authorization", &auth)
        .header("content-length", GIB.to_string())
        .body(upload(GIB))
        .unwrap();
    let res = client.request(put).await.unwrap();
    assert_eq!(res.status(), 200);
    let sink = backend.seen().into_iter().find(|s| s.path == "/sink/big").unwrap();
    assert_eq!(sink.body_len, GIB, "the backend received the whole upload");

    let get = http::Request::get(server.url(&format!("/download?bytes={GIB}")))
        .header("authorization", &auth)
        .body(upload(0))
        .unwrap();
    let res = client.request(get).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, GIB);

    let peak = server.memory_kib("VmHWM");
    let growth = peak.saturating_sub(baseline);
    println!("davgate RSS: baseline {baseline} KiB, peak {peak} KiB, growth {growth} KiB over 1 GiB PUT + 1 GiB GET");
    assert!(growth < LIMIT_KIB, "memory grew by {growth} KiB (limit {LIMIT_KIB} KiB)");
}
