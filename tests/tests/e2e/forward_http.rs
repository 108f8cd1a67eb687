//! Forwarding over HTTPS (issue 10, `json` and `hec` formats): the collector POSTs to a small
//! HTTPS endpoint started here (hyper over rustls, a CA made here) that stands in for the
//! SOC's collector. The endpoint checks every request (path, `Authorization`,
//! `Content-Encoding: gzip`, a body that gunzips and parses) and records every event it
//! accepts; it can answer 503 for a while and 400 to any request holding one chosen record.
//!
//! Shown: every stored event arrives, each event_id counted (repeats are allowed by
//! at-least-once and reported); the raw text round-trips; a 503 period is retried and loses
//! nothing; the one poison record is refused, counted once (`permanent_errors` = 1 with
//! `last_error`) and every record after it arrives; HEC events have Splunk's documented shape.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use logship_e2e::{Collector, CollectorOpts, free_port, run_test, wait_until};
use logship_store::COLLECTOR_IDENTITY;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use super::forward::{
    ARRIVAL, add_forward, agent_with_file, forwarder, forwarders_cmd, make_pki, record,
    record_number, stored, write_records,
};

/// What the endpoint answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 401 to every request (the SOC has not registered the token yet).
    Unauthorized,
    /// 503 with `Retry-After: 1` to every request.
    Unavailable,
    /// 2xx, except 400 to a request holding the poison record.
    Accepting,
    /// 400 to every request (a destination that refuses everything: wrong index, format).
    RefuseAll,
}

/// Everything the endpoint saw.
struct Seen {
    mode: Mode,
    /// Record number refused with 400.
    poison: Option<u64>,
    /// Every accepted event, in arrival order.
    events: Vec<Value>,
    requests: u64,
    unavailable_answers: u64,
    unauthorized_answers: u64,
    refused_answers: u64,
    /// Pause before answering an accepted request (to kill the collector mid-delivery).
    delay: std::time::Duration,
    /// Requests that broke the contract (wrong path, header, encoding, body).
    faults: Vec<String>,
}

/// The HTTPS endpoint: a tokio runtime serving hyper over rustls on 127.0.0.1.
struct Endpoint {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

/// What a request must look like.
#[derive(Clone)]
struct Expect {
    path: String,
    authorization: String,
    /// The field holding the raw text ("message" for json, "event" for hec).
    raw_key: &'static str,
}

impl Endpoint {
    fn start(pki: &Path, expect: Expect) -> Result<Endpoint> {
        let certs =
            CertificateDer::pem_file_iter(pki.join("siem.pem"))?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(pki.join("siem.key"))?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let port = free_port();
        let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))?;
        let seen = Arc::new(Mutex::new(Seen {
            mode: Mode::Accepting,
            poison: None,
            events: Vec::new(),
            requests: 0,
            unavailable_answers: 0,
            unauthorized_answers: 0,
            refused_answers: 0,
            delay: std::time::Duration::ZERO,
            faults: Vec::new(),
        }));
        let state = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, state, expect) = (acceptor.clone(), state.clone(), expect.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (state, expect) = (state.clone(), expect.clone());
                        async move { Ok::<_, hyper::Error>(answer(req, &state, &expect).await) }
                    });
                    let _closed = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Endpoint {
            port,
            seen,
            _runtime: runtime,
        })
    }

    fn seen<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().expect("endpoint state lock"))
    }
}

fn reply(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    }
    r
}

/// Checks one request and answers it.
async fn answer(
    req: Request<Incoming>,
    state: &Mutex<Seen>,
    expect: &Expect,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut faults = Vec::new();
    if req.method() != hyper::Method::POST || req.uri().path() != expect.path {
        faults.push(format!("{} {}", req.method(), req.uri()));
    }
    if header("authorization") != expect.authorization {
        faults.push(format!("authorization {:?}", header("authorization")));
    }
    if header("content-encoding") != "gzip" {
        faults.push(format!("content-encoding {:?}", header("content-encoding")));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, &format!("body: {e}")),
    };
    let mut plain = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain) {
        faults.push(format!("gunzip: {e}"));
    }
    let events: Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(&plain)
        .into_iter::<Value>()
        .collect();
    let (response, delay) = judge(events, faults, state, expect);
    tokio::time::sleep(delay).await;
    response
}

/// The answer to a request's events (and how long to wait before giving it).
fn judge(
    events: Result<Vec<Value>, serde_json::Error>,
    mut faults: Vec<String>,
    state: &Mutex<Seen>,
    expect: &Expect,
) -> (Response<Full<Bytes>>, std::time::Duration) {
    let now = std::time::Duration::ZERO;
    let mut seen = state.lock().expect("endpoint state lock");
    seen.requests += 1;
    let events = match events {
        Ok(e) if !e.is_empty() => e,
        other => {
            faults.push(format!("body is not JSON events: {other:?}"));
            Vec::new()
        }
    };
    if !faults.is_empty() {
        seen.faults.extend(faults);
        return (
            reply(StatusCode::UNAUTHORIZED, "request broke the contract"),
            now,
        );
    }
    if seen.mode == Mode::Unauthorized {
        seen.unauthorized_answers += 1;
        return (reply(StatusCode::UNAUTHORIZED, "unknown token"), now);
    }
    if seen.mode == Mode::Unavailable {
        seen.unavailable_answers += 1;
        return (
            reply(StatusCode::SERVICE_UNAVAILABLE, "down for maintenance"),
            now,
        );
    }
    let poisoned = seen.mode == Mode::RefuseAll
        || seen.poison.is_some_and(|p| {
            events.iter().any(|e| {
                e[expect.raw_key]
                    .as_str()
                    .and_then(record_number)
                    .is_some_and(|n| n == p)
            })
        });
    if poisoned {
        seen.refused_answers += 1;
        return (
            reply(
                StatusCode::BAD_REQUEST,
                r#"{"text":"Invalid data format","code":6}"#,
            ),
            now,
        );
    }
    seen.events.extend(events);
    (
        reply(StatusCode::OK, r#"{"text":"Success","code":0}"#),
        seen.delay,
    )
}

/// Events of the agent (not the collector's checkpoints) by event_id: (times seen, raw).
fn by_event_id(
    events: &[Value],
    id_of: impl Fn(&Value) -> Option<&str>,
    raw_key: &str,
) -> (HashMap<String, (u32, String)>, u64) {
    let mut m: HashMap<String, (u32, String)> = HashMap::new();
    let mut checkpoints = 0;
    for e in events {
        let agent = e["agent"].as_str().or(e["fields"]["agent"].as_str());
        if agent == Some(COLLECTOR_IDENTITY) {
            checkpoints += 1;
            continue;
        }
        let id = id_of(e).unwrap_or_default().to_string();
        let raw = e[raw_key].as_str().unwrap_or_default().to_string();
        m.entry(id).or_insert((0, raw)).0 += 1;
    }
    (m, checkpoints)
}

#[test]
fn json_over_https_every_event_once_a_503_period_retried_and_a_poison_record_counted() {
    run_test(|sb| {
        let pki = sb.path().join("pki");
        make_pki(&pki)?;
        let token = "s3cr3t-token";
        let endpoint = Endpoint::start(
            &pki,
            Expect {
                path: "/ingest/logs".into(),
                authorization: format!("Bearer {token}"),
                raw_key: "message",
            },
        )?;
        const N: u64 = 20_000;
        const POISON: u64 = 7_777;
        endpoint.seen(|s| {
            s.mode = Mode::Unauthorized;
            s.poison = Some(POISON);
        });
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        std::fs::copy(
            pki.join("soc-ca.pem"),
            collector.data_dir().join("soc-ca.pem"),
        )?;
        add_forward(
            &collector,
            &format!(
                "[[forward]]\nname = \"soc\"\nformat = \"json\"\n\
                 url = \"https://localhost:{}/ingest/logs\"\nca_cert = \"soc-ca.pem\"\ntoken = \"{token}\"\n",
                endpoint.port
            ),
        )?;
        collector.start()?;
        let log = sb.path().join("app.log");
        write_records(&log, 0..N / 2)?;
        let mut agent = agent_with_file(sb, &collector, &log)?;
        agent.start()?;
        // The token is refused: retried (it may be registered later), shown as the last error.
        wait_until(ARRIVAL, "two 401 answers", || {
            agent.check_alive()?;
            Ok(endpoint.seen(|s| s.unauthorized_answers) >= 2)
        })?;
        let refused_token = forwarder(&collector, "soc")?;
        ensure!(
            refused_token["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("401") && e.contains("token")),
            "{refused_token}"
        );
        ensure!(
            refused_token["permanent_errors"].as_u64() == Some(0),
            "{refused_token}"
        );
        endpoint.seen(|s| s.mode = Mode::Unavailable);
        let before = endpoint.seen(|s| s.unavailable_answers);
        // The destination is down: the forwarder retries (Retry-After honoured), counts and
        // shows the error, and delivers nothing.
        wait_until(ARRIVAL, "three 503 answers while records pile up", || {
            agent.check_alive()?;
            Ok(endpoint.seen(|s| s.unavailable_answers) >= before + 3)
        })?;
        let down = forwarder(&collector, "soc")?;
        ensure!(down["delivered"].as_u64() == Some(0), "{down}");
        ensure!(down["errors"].as_u64() >= Some(1), "{down}");
        ensure!(
            down["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("503")),
            "{down}"
        );
        ensure!(down["permanent_errors"].as_u64() == Some(0), "{down}");
        endpoint.seen(|s| s.mode = Mode::Accepting);
        let accepted = || {
            endpoint.seen(|s| {
                by_event_id(&s.events, |e| e["event_id"].as_str(), "message")
                    .0
                    .len() as u64
            })
        };
        wait_until(
            ARRIVAL,
            "the first half but the poison record accepted",
            || {
                agent.check_alive()?;
                let soc = forwarder(&collector, "soc")?;
                Ok(accepted() >= N / 2 - 1 && soc["lag_records"].as_u64() == Some(0))
            },
        )?;
        let soc = forwarder(&collector, "soc")?;
        ensure!(soc["permanent_errors"].as_u64() == Some(1), "{soc}");
        let store = stored(&collector.store())?;
        let poison_id = store
            .iter()
            .find(|(_, raw)| record_number(raw) == Some(POISON))
            .map(|(id, _)| id.clone())
            .context("poison record stored")?;
        ensure!(
            soc["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(&poison_id) && e.contains("400")),
            "{soc}"
        );
        let shown = forwarders_cmd(collector.data_dir())?;
        ensure!(
            shown["soc"]["permanent_errors"].as_u64() == Some(1),
            "{shown:?}"
        );
        // So far no request failed after another of its batch was accepted: each event of
        // the first half arrived exactly once.
        let first_repeats = endpoint.seen(|s| {
            let (m, _) = by_event_id(&s.events, |e| e["event_id"].as_str(), "message");
            m.values().filter(|(times, _)| *times > 1).count()
        });
        ensure!(
            first_repeats == 0,
            "{first_repeats} events of the first half repeated"
        );
        // The second half, answered slowly; the collector is killed with SIGKILL once the
        // endpoint has accepted some of it (requests answered, cursor maybe not committed).
        endpoint.seen(|s| s.delay = std::time::Duration::from_millis(400));
        let first_half = accepted();
        write_records(&log, N / 2..N)?;
        wait_until(ARRIVAL, "part of the second half accepted", || {
            agent.check_alive()?;
            Ok(accepted() > first_half)
        })?;
        let started_at = |c: &Collector| -> Result<Value> {
            Ok(c.status()?.map_or(Value::Null, |s| s["started_at"].clone()))
        };
        let killed_run = started_at(&collector)?;
        collector.kill9()?;
        let at_kill = accepted();
        collector.start()?;
        wait_until(ARRIVAL, "every record but the poison one accepted", || {
            agent.check_alive()?;
            let soc = forwarder(&collector, "soc")?;
            Ok(started_at(&collector)? != killed_run
                && accepted() >= N - 1
                && soc["lag_records"].as_u64() == Some(0))
        })?;
        let after_restart = forwarder(&collector, "soc")?;
        ensure!(
            after_restart["permanent_errors"].as_u64() == Some(0),
            "the refused record was sent again after the restart: {after_restart}"
        );
        let store = stored(&collector.store())?;
        let (faults, requests, unavailable, refused, events) = endpoint.seen(|s| {
            (
                s.faults.clone(),
                s.requests,
                s.unavailable_answers,
                s.refused_answers,
                s.events.clone(),
            )
        });
        ensure!(faults.is_empty(), "requests broke the contract: {faults:?}");
        let (got, checkpoints) = by_event_id(&events, |e| e["event_id"].as_str(), "message");
        ensure!(store.len() as u64 == N, "store holds {}", store.len());
        let mut repeats = 0;
        for (id, raw) in &store {
            let i = record_number(raw).context("record number")?;
            ensure!(raw == &record(i), "stored raw of record {i} differs");
            match got.get(id) {
                None => ensure!(i == POISON, "event {id} (record {i}) never arrived"),
                Some((times, msg)) => {
                    ensure!(i != POISON, "the refused record arrived");
                    ensure!(msg == raw, "event {id}: got {msg:?}, stored {raw:?}");
                    repeats += u64::from(times - 1);
                }
            }
        }
        ensure!(got.len() as u64 == N - 1, "{} distinct events", got.len());
        // Shape of one json line.
        let one = events
            .iter()
            .find(|e| e["agent"] != COLLECTOR_IDENTITY)
            .context("an event")?;
        for key in [
            "event_id",
            "@timestamp",
            "agent",
            "host",
            "input",
            "message",
            "fields",
        ] {
            ensure!(one.get(key).is_some(), "json line lacks {key}: {one}");
        }
        ensure!(one["input"] == "app" && one["fields"].is_object(), "{one}");
        println!(
            "json over https: {} of {N} events accepted ({repeats} repeats by event_id), \
             {checkpoints} checkpoints, {requests} requests, {unavailable} answered 503, \
             {refused} answered 400; permanent_errors 1 for {poison_id}; SIGKILL with {at_kill} \
             accepted",
            got.len()
        );
        agent.stop()?;
        collector.stop()?;
        Ok(())
    });
}

#[test]
fn hec_events_have_splunks_shape_and_each_arrives() {
    run_test(|sb| {
        let pki = sb.path().join("pki");
        make_pki(&pki)?;
        let token = "0f3b2c1d-aaaa-bbbb-cccc-0123456789ab";
        let endpoint = Endpoint::start(
            &pki,
            Expect {
                path: "/services/collector/event".into(),
                authorization: format!("Splunk {token}"),
                raw_key: "event",
            },
        )?;
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        std::fs::copy(
            pki.join("soc-ca.pem"),
            collector.data_dir().join("soc-ca.pem"),
        )?;
        // No path in the url: the HEC event endpoint is used.
        add_forward(
            &collector,
            &format!(
                "[[forward]]\nname = \"splunk\"\nformat = \"hec\"\n\
                 url = \"https://localhost:{}\"\nca_cert = \"soc-ca.pem\"\ntoken = \"{token}\"\n",
                endpoint.port
            ),
        )?;
        endpoint.seen(|s| s.mode = Mode::RefuseAll);
        collector.start()?;
        let log = sb.path().join("app.log");
        const N: u64 = 3_000;
        write_records(&log, 0..N)?;
        let mut agent = agent_with_file(sb, &collector, &log)?;
        agent.start()?;
        // A destination that refuses everything is a failure to retry, not 3,000 refused
        // records: nothing counted as refused, nothing passed over.
        wait_until(ARRIVAL, "a batch refused whole, twice", || {
            agent.check_alive()?;
            let s = forwarder(&collector, "splunk")?;
            Ok(endpoint.seen(|s| s.refused_answers) >= 64
                && s["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("refuses every record")))
        })?;
        let refusing = forwarder(&collector, "splunk")?;
        ensure!(
            refusing["permanent_errors"].as_u64() == Some(0)
                && refusing["delivered"].as_u64() == Some(0),
            "{refusing}"
        );
        endpoint.seen(|s| s.mode = Mode::Accepting);
        wait_until(
            ARRIVAL,
            "every record delivered to the HEC endpoint",
            || {
                agent.check_alive()?;
                let s = forwarder(&collector, "splunk")?;
                Ok(s["delivered"].as_u64() >= Some(N) && s["lag_records"].as_u64() == Some(0))
            },
        )?;
        let (faults, events) = endpoint.seen(|s| (s.faults.clone(), s.events.clone()));
        ensure!(faults.is_empty(), "requests broke the contract: {faults:?}");
        let store = stored(&collector.store())?;
        let (got, _) = by_event_id(&events, |e| e["fields"]["event_id"].as_str(), "event");
        ensure!(got.len() as u64 == N, "{} distinct events", got.len());
        for (id, raw) in &store {
            let (_, event) = got.get(id).with_context(|| format!("event {id} missing"))?;
            ensure!(event == raw, "event {id}: got {event:?}, stored {raw:?}");
        }
        // Splunk's "Format events for HTTP Event Collector": time (epoch seconds, a number),
        // host, source, sourcetype, event, fields (indexed fields: strings only).
        for e in events
            .iter()
            .filter(|e| e["fields"]["agent"] != COLLECTOR_IDENTITY)
        {
            let o = e.as_object().context("event object")?;
            let keys: Vec<&str> = o.keys().map(String::as_str).collect();
            ensure!(
                keys.iter().all(|k| {
                    ["time", "host", "source", "sourcetype", "event", "fields"].contains(k)
                }),
                "unexpected key in {e}"
            );
            ensure!(
                e["time"].is_number() && e["time"].as_f64() > Some(1.7e9),
                "{e}"
            );
            ensure!(e["host"].is_string() && e["source"] == "app", "{e}");
            ensure!(
                e["sourcetype"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("logship")),
                "{e}"
            );
            ensure!(e["event"].is_string(), "{e}");
            let fields = e["fields"].as_object().context("fields object")?;
            ensure!(
                fields.values().all(Value::is_string),
                "non-string field in {e}"
            );
            ensure!(
                fields["agent"] == "plant-1" && fields["input"] == "app",
                "{e}"
            );
        }
        let repeats: u32 = got.values().map(|(times, _)| times - 1).sum();
        println!(
            "hec: {N} events, each event_id present ({repeats} repeats), Splunk event shape \
             checked"
        );
        agent.stop()?;
        collector.stop()?;
        Ok(())
    });
}
