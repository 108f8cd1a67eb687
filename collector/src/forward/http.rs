//! HTTPS destinations (`json`, `hec`): a batch of encoded records is POSTed, gzip'd, in one
//! or more requests, and counts as delivered only when every request got a 2xx.
//!
//! Client: `reqwest` (blocking, HTTP/1.1) over the forwarder's own rustls `ClientConfig`
//! (`transport::client_config`: the `ca_cert` file or the system roots, optional client
//! certificate, ring provider), redirects off (a token is never sent on to another host),
//! 10 s connect and 60 s request deadlines. The client is built in the forwarder thread on
//! first use (a blocking client must not live inside the collector's async runtime).
//!
//! Bounds: one request carries at most [`MAX_REQUEST_RECORDS`] records and
//! [`MAX_REQUEST_BYTES`] bytes before gzip (a single bigger record goes alone); the worker's
//! batch bounds apply above that.
//!
//! Answers:
//! - 2xx: delivered.
//! - 400, 413, 422: the destination refuses the content. The request is split in halves and
//!   each half sent again, down to the single refused record, which is counted as a permanent
//!   error (with its event_id and the answer), remembered (so a resend after a later failure
//!   skips it instead of counting it twice; at most [`MAX_REFUSED`] ids) and passed over;
//!   the records around it are delivered. A destination that refuses [`MAX_BLIND_REFUSALS`]
//!   requests of a batch and accepts none refuses everything (wrong url, format, index): the
//!   batch fails and is retried like a 5xx, nothing is counted as refused. (Limit: a batch of
//!   one record cannot tell the two apart; it is counted as refused.)
//! - 401, 403, 429, 5xx, any other status, connection and TLS errors: the whole batch fails
//!   and is retried by the worker with capped backoff (a `Retry-After` in seconds is honoured
//!   up to the cap). Requests that had already succeeded are sent again then (at least once;
//!   the event_id lets the SIEM de-duplicate).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use rustls::ClientConfig;

use crate::config::forward::{Endpoint, ForwardConfig, ForwardFormat};

/// Records per request.
pub(crate) const MAX_REQUEST_RECORDS: usize = 5_000;
/// Bytes per request before gzip.
pub(crate) const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Refused event ids remembered (then forgotten all at once; a forgotten one that is sent
/// again is found and counted again).
const MAX_REFUSED: usize = 10_000;
/// Deadline of the TCP connect and TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a whole request (send and answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Refused requests of one batch, none accepted, after which the destination is taken to
/// refuse everything (a batch with one bad record among n costs about 2 log2(n) requests).
const MAX_BLIND_REFUSALS: u64 = 32;
/// Bytes of an answer's body quoted in an error.
const QUOTE: usize = 200;
/// Bytes of an answer's body read.
const ANSWER_BYTES: u64 = 4096;

/// A failure after which the batch is sent again later.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub(crate) struct Retry {
    /// What happened (status and the start of the answer, or the transport error).
    pub(crate) text: String,
    /// The destination's `Retry-After`, if any.
    pub(crate) retry_after: Option<Duration>,
}

/// A record the destination refused.
pub(crate) struct Refused {
    /// Its event_id.
    pub(crate) event_id: String,
    /// The destination's answer.
    pub(crate) answer: String,
}

/// The records of a batch as the sink sees them.
pub(crate) struct Records<'a> {
    /// The encoded records, back to back.
    pub(crate) bytes: &'a [u8],
    /// End offset of each record in `bytes`.
    pub(crate) ends: &'a [usize],
    /// Event id of each record.
    pub(crate) ids: &'a [String],
}

/// One HTTPS destination.
pub(crate) struct HttpSink {
    url: String,
    authorization: String,
    tls: Arc<ClientConfig>,
    client: Option<Client>,
    refused: HashSet<String>,
}

impl HttpSink {
    /// The sink of a json or hec forwarder.
    pub(crate) fn new(config: &ForwardConfig) -> anyhow::Result<HttpSink> {
        let Endpoint::Https { url } = &config.endpoint else {
            anyhow::bail!("forwarder {:?}: not an https endpoint", config.name);
        };
        let token = config.token.as_deref().unwrap_or_default();
        let authorization = match config.format {
            ForwardFormat::Hec => format!("Splunk {token}"),
            _ => format!("Bearer {token}"),
        };
        let tls =
            super::transport::client_config(config.ca_cert.as_ref(), config.client_cert.as_ref())?;
        Ok(HttpSink {
            url: url.clone(),
            authorization,
            tls,
            client: None,
            refused: HashSet::new(),
        })
    }

    /// Delivers `records`; newly refused ones are passed to `on_refused` and skipped. Returns
    /// how many were skipped because they had been refused before (not sent again).
    pub(crate) fn deliver(
        &mut self,
        records: &Records<'_>,
        on_refused: &mut dyn FnMut(Refused),
    ) -> Result<u64, Retry> {
        let mut chunk: Vec<usize> = Vec::new();
        let mut chunk_bytes = 0;
        let mut known = 0;
        let mut split = Split::default();
        for i in 0..records.ids.len() {
            if self.refused.contains(&records.ids[i]) {
                known += 1;
                continue;
            }
            let len = span(records, i).len();
            if !chunk.is_empty()
                && (chunk.len() >= MAX_REQUEST_RECORDS || chunk_bytes + len > MAX_REQUEST_BYTES)
            {
                self.post_split(records, &chunk, &mut split)?;
                chunk.clear();
                chunk_bytes = 0;
            }
            chunk.push(i);
            chunk_bytes += len;
        }
        if !chunk.is_empty() {
            self.post_split(records, &chunk, &mut split)?;
        }
        // Only now (the batch went through) are the refused records counted and remembered.
        for (i, answer) in split.found {
            let event_id = records.ids[i].clone();
            if self.refused.len() >= MAX_REFUSED {
                self.refused.clear();
            }
            self.refused.insert(event_id.clone());
            on_refused(Refused { event_id, answer });
        }
        Ok(known)
    }

    /// POSTs the records `which`; on a refusal, halves until the refused records are alone.
    /// A destination that refuses [`MAX_BLIND_REFUSALS`] requests of a batch without accepting
    /// one refuses everything (wrong url, format or index): that is a retried failure, not
    /// thousands of refused records.
    fn post_split(
        &mut self,
        records: &Records<'_>,
        which: &[usize],
        split: &mut Split,
    ) -> Result<(), Retry> {
        let mut body = Vec::new();
        for &i in which {
            body.extend_from_slice(span(records, i));
        }
        match self.post(&body)? {
            None => {
                split.accepted += 1;
                Ok(())
            }
            Some(answer) => {
                split.refused += 1;
                if split.accepted == 0 && split.refused >= MAX_BLIND_REFUSALS {
                    return Err(retry(
                        format!(
                            "the destination refuses every record ({answer}); check the url, \
                             format and token"
                        ),
                        None,
                    ));
                }
                if which.len() == 1 {
                    split.found.push((which[0], answer));
                    return Ok(());
                }
                let (a, b) = which.split_at(which.len() / 2);
                self.post_split(records, a, split)?;
                self.post_split(records, b, split)
            }
        }
    }

    /// One POST: `Ok(None)` on 2xx, `Ok(Some(answer))` when the content is refused.
    fn post(&mut self, body: &[u8]) -> Result<Option<String>, Retry> {
        let client = match &self.client {
            Some(c) => c,
            None => self.client.insert(
                Client::builder()
                    .use_preconfigured_tls((*self.tls).clone())
                    .https_only(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .user_agent(concat!("logship-collector/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| retry(format!("building the HTTPS client: {e}"), None))?,
            ),
        };
        let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
        gz.write_all(body).expect("writing to a Vec never fails");
        let gz = gz.finish().expect("writing to a Vec never fails");
        let mut response = client
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(gz)
            .send()
            .map_err(|e| retry(format!("POST {}: {}", self.url, error_chain(&e)), None))?;
        let status = response.status();
        // At most ANSWER_BYTES of the answer are read (a hostile destination cannot fill
        // memory); reading a short answer to its end also lets the connection be reused.
        let mut answer_body = Vec::new();
        let read = (&mut response)
            .take(ANSWER_BYTES)
            .read_to_end(&mut answer_body);
        if status.is_success() {
            return Ok(None);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if let Err(e) = read {
            tracing::debug!(error = %e, "Could not read the destination's answer.");
        }
        let text = String::from_utf8_lossy(&answer_body);
        let quoted: String = text.chars().take(QUOTE).collect();
        let answer = format!("HTTP {status}: {}", quoted.trim());
        match status {
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNPROCESSABLE_ENTITY => Ok(Some(answer)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(retry(
                format!("{answer} (check the forwarder's token)"),
                None,
            )),
            _ => Err(retry(answer, retry_after)),
        }
    }
}

/// Outcome of the requests of one batch so far.
#[derive(Default)]
struct Split {
    accepted: u64,
    refused: u64,
    /// Records refused alone: index and answer.
    found: Vec<(usize, String)>,
}

fn span<'a>(records: &Records<'a>, i: usize) -> &'a [u8] {
    let start = if i == 0 { 0 } else { records.ends[i - 1] };
    &records.bytes[start..records.ends[i]]
}

fn retry(text: String, retry_after: Option<Duration>) -> Retry {
    Retry { text, retry_after }
}

/// An error and its sources on one line (reqwest's own text omits the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
