use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openchannel_gateway::domain::*;
use openchannel_gateway::store::ingest::{IngestEvent, IngestRequest};
use openchannel_gateway::store::{Store, WebhookReply};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let clients: usize = std::env::var("C")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (store, n) = (store.clone(), n.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    let m = CustomerMessage {
                        chat: ChatRef {
                            id: format!("chat-{}", i % 500),
                            name: Some("Bench".into()),
                            url: None,
                        },
                        user: UserRef {
                            id: format!("user-{}", i % 500),
                            name: Some("B".into()),
                            last_name: None,
                            picture: None,
                            url: None,
                            email: None,
                            phone: None,
                        },
                        message: MessageBody {
                            id: format!("msg-{i}"),
                            date: Some(1),
                            text: Some(
                                "Hello from the benchmark, a message of ordinary length.".into(),
                            ),
                            files: vec![],
                        },
                    };
                    let req = IngestRequest {
                        channel: "bench".into(),
                        webhook_id: format!("w{i}"),
                        portal: "p".into(),
                        line: 1,
                        event: IngestEvent::Created(m),
                        reply: WebhookReply {
                            status: 202,
                            body: "{\"status\":\"accepted\"}".into(),
                            at_ms: 0,
                        },
                        now_ms: 0,
                    };
                    store.ingest(req, |_| {}).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let el = start.elapsed().as_secs_f64();
    let s = store.commit_stats();
    println!(
        "{} commits in {:.1}s = {:.0}/s, {} flushes ({:.1}/flush)",
        s.commits,
        el,
        s.commits as f64 / el,
        s.flushes,
        s.commits as f64 / s.flushes as f64
    );
}
