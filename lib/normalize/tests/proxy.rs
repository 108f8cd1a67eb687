//! Forward-proxy access logs written by the real daemons (`deploy/test/proxy-fixtures.sh`, see
//! tests/data/README.md): one squid run writing each request twice, in `logformat combined` and
//! in the native `squid` format, nginx as a forward proxy (`proxy_pass
//! http://$http_host$request_uri`, default `combined`) and Apache with mod_proxy (`ProxyRequests
//! On`, Debian's `combined`). Each test checks the fields of named real lines, the two squid
//! formats are checked to agree line by line, and every line is claimed by its own parser alone.

mod common;

use common::{CTX, data, line_of, norm, num, s};
use logship_normalize::{Event, Normalizer, datasets};

const SQUID_COMBINED: &str = "proxy-squid-combined.log";
const SQUID_NATIVE: &str = "proxy-squid-native.log";
const NGINX: &str = "proxy-nginx-forward.log";
const APACHE: &str = "proxy-apache-forward.log";

fn typ(e: &Event) -> &str {
    e.get("event.type")
        .and_then(|v| v.get(0))
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

/// (dataset, url.domain, url.port, url.scheme, http.request.method, status, event.action,
/// event.type, event.outcome, user.name)
type View<'a> = (
    &'a str,
    &'a str,
    Option<u64>,
    &'a str,
    &'a str,
    Option<u64>,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

/// (user, status, `third` of the event) of each request for `/private/` in fixture `f`: the
/// basic-auth runs (no credentials, a wrong password, alice's).
fn private_rows(f: &str, third: impl Fn(&Event) -> &str) -> Vec<(String, Option<u64>, String)> {
    data(f)
        .lines()
        .filter(|l| l.contains("/private/"))
        .map(norm)
        .map(|e| {
            (
                s(&e, "user.name").to_owned(),
                num(&e, "http.response.status_code"),
                third(&e).to_owned(),
            )
        })
        .collect()
}

fn view(e: &Event) -> View<'_> {
    (
        e.dataset,
        s(e, "url.domain"),
        num(e, "url.port"),
        s(e, "url.scheme"),
        s(e, "http.request.method"),
        num(e, "http.response.status_code"),
        s(e, "event.action"),
        typ(e),
        s(e, "event.outcome"),
        s(e, "user.name"),
    )
}

#[test]
fn squid_combined_real_lines_give_their_fields() {
    let f = SQUID_COMBINED;
    let e = norm(&line_of(f, "GET http://origin.example.test:31180/ "));
    assert_eq!(
        view(&e),
        (
            "squid",
            "origin.example.test",
            Some(31180),
            "http",
            "GET",
            Some(200),
            "TCP_MISS",
            "access",
            "success",
            ""
        )
    );
    // `%tl` in squid's zone (+0100) → UTC; `%<st` is the whole reply.
    assert_eq!(
        (
            s(&e, "@timestamp"),
            s(&e, "source.ip"),
            num(&e, "http.response.bytes"),
            s(&e, "user_agent.original"),
            s(&e, "observer.product"),
        ),
        (
            "2026-11-30T08:56:26Z",
            "127.0.0.1",
            Some(338),
            "curl/7.88.1",
            "Squid"
        )
    );
    let e = norm(&line_of(f, "TCP_REFRESH_UNMODIFIED"));
    assert_eq!(s(&e, "event.action"), "TCP_REFRESH_UNMODIFIED");
    let e = norm(&line_of(f, "/report.txt?"));
    assert_eq!(
        (
            s(&e, "http.request.referrer"),
            s(&e, "user_agent.original"),
            s(&e, "url.original")
        ),
        (
            "http://intranet.example.test/start",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "http://127.0.0.1:31180/report.txt?"
        )
    );
    let e = norm(&line_of(f, "/missing.php"));
    assert_eq!(
        view(&e),
        (
            "squid",
            "127.0.0.1",
            Some(31180),
            "http",
            "GET",
            Some(404),
            "TCP_MISS",
            "access",
            "failure",
            ""
        )
    );
    let e = norm(&line_of(f, "\"POST "));
    assert_eq!(
        (
            s(&e, "http.request.method"),
            num(&e, "http.response.status_code")
        ),
        ("POST", Some(200))
    );
    // `http_access deny` for .blocked.example.test: squid's own refusal.
    let e = norm(&line_of(f, "GET http://www.blocked.example.test/"));
    assert_eq!(
        view(&e),
        (
            "squid",
            "www.blocked.example.test",
            None,
            "http",
            "GET",
            Some(403),
            "TCP_DENIED",
            "denied",
            "failure",
            ""
        )
    );
    let e = norm(&line_of(f, "CONNECT origin.example.test:31443"));
    assert_eq!(
        view(&e),
        (
            "squid",
            "origin.example.test",
            Some(31443),
            "",
            "CONNECT",
            Some(200),
            "TCP_TUNNEL",
            "access",
            "success",
            ""
        )
    );
    // CONNECT to a port outside `SSL_ports`: denied.
    let e = norm(&line_of(f, "CONNECT 127.0.0.1:31180"));
    assert_eq!(
        (s(&e, "event.action"), typ(&e), num(&e, "url.port")),
        ("TCP_DENIED", "denied", Some(31180))
    );
    // CONNECT to a closed port: no tunnel, squid answers 503.
    let e = norm(&line_of(f, "CONNECT 127.0.0.1:31444"));
    assert_eq!(
        (
            s(&e, "event.action"),
            typ(&e),
            s(&e, "event.outcome"),
            num(&e, "http.response.status_code")
        ),
        ("NONE_NONE", "access", "failure", Some(503))
    );
    let e = norm(&line_of(f, "no-such-host.invalid"));
    assert_eq!(
        (s(&e, "url.domain"), num(&e, "http.response.status_code")),
        ("no-such-host.invalid", Some(502))
    );
    // proxy_auth: no credentials, a wrong password (squid logs the name tried), alice.
    let private: Vec<Event> = data(f)
        .lines()
        .filter(|l| l.contains("private.example.test"))
        .map(norm)
        .collect();
    let got: Vec<_> = private
        .iter()
        .map(|e| {
            (
                s(e, "user.name"),
                s(e, "event.action"),
                typ(e),
                num(e, "http.response.status_code"),
                s(e, "http.request.method"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("", "TCP_DENIED", "denied", Some(407), "GET"),
            ("alice", "TCP_DENIED", "denied", Some(407), "GET"),
            ("alice", "TCP_MISS", "access", Some(200), "GET"),
            ("alice", "TCP_TUNNEL", "access", Some(200), "CONNECT"),
        ]
    );
    // A connection closed before any request (here the fixture script's port probe): squid's
    // pseudo-URL, no method, no status code.
    let e = norm(&line_of(f, "error:transaction-end-before-headers"));
    assert_eq!(
        (
            e.dataset,
            s(&e, "url.original"),
            s(&e, "http.request.method"),
            num(&e, "http.response.status_code"),
            s(&e, "event.action"),
            s(&e, "event.outcome"),
            s(&e, "url.domain"),
        ),
        (
            "squid",
            "error:transaction-end-before-headers",
            "",
            None,
            "NONE_NONE",
            "",
            ""
        )
    );
}

/// The same squid run wrote every request in both formats, in the same order: each pair gives the
/// same fields (the native line's millisecond stamp, truncated, is the combined line's second).
#[test]
fn squid_native_and_combined_lines_of_one_run_agree() {
    let native = data(SQUID_NATIVE);
    let combined = data(SQUID_COMBINED);
    assert_eq!(native.lines().count(), combined.lines().count());
    assert_eq!(native.lines().count(), 21);
    for (nl, cl) in native.lines().zip(combined.lines()) {
        let (n, c) = (norm(nl), norm(cl));
        assert_eq!((n.dataset, c.dataset), ("squid", "squid"), "{nl}\n{cl}");
        for k in [
            "source.ip",
            "user.name",
            "http.request.method",
            "url.original",
            "url.domain",
            "url.port",
            "url.scheme",
            "http.response.status_code",
            "http.response.bytes",
            "event.action",
            "event.category",
            "event.type",
            "event.outcome",
            "observer.vendor",
        ] {
            assert_eq!(n.get(k), c.get(k), "{k}:\n{nl}\n{cl}");
        }
        let stamp = s(&n, "@timestamp");
        let second = stamp
            .split_once('.')
            .map_or(stamp.trim_end_matches('Z'), |x| x.0);
        assert_eq!(format!("{second}Z"), s(&c, "@timestamp"), "{nl}\n{cl}");
        // Only the native format names the server squid went to (`%<a`).
        if nl.contains("HIER_DIRECT/127.0.0.1") {
            assert_eq!(s(&n, "destination.ip"), "127.0.0.1");
        }
    }
}

#[test]
fn nginx_forward_proxy_real_lines_give_their_fields() {
    let f = NGINX;
    let e = norm(&line_of(f, "GET http://origin.example.test/ "));
    assert_eq!(
        view(&e),
        (
            "web.access",
            "origin.example.test",
            None,
            "http",
            "GET",
            Some(200),
            "",
            "access",
            "success",
            ""
        )
    );
    assert_eq!(
        (
            s(&e, "@timestamp"),
            s(&e, "source.ip"),
            num(&e, "http.response.body.bytes")
        ),
        ("2026-11-30T08:56:31Z", "127.0.0.1", Some(45))
    );
    let e = norm(&line_of(f, "/report.txt?shift=night&line=3"));
    assert_eq!(
        (
            s(&e, "url.domain"),
            num(&e, "url.port"),
            s(&e, "url.original"),
            s(&e, "http.request.referrer")
        ),
        (
            "127.0.0.1",
            Some(31180),
            "http://127.0.0.1:31180/report.txt?shift=night&line=3",
            "http://intranet.example.test/start"
        )
    );
    let e = norm(&line_of(f, "/missing.php"));
    assert_eq!(
        (num(&e, "http.response.status_code"), s(&e, "event.outcome")),
        (Some(404), "failure")
    );
    let e = norm(&line_of(f, "\"POST "));
    assert_eq!(s(&e, "http.request.method"), "POST");
    let e = norm(&line_of(f, "GET http://blocked.example.test/"));
    assert_eq!(
        (
            s(&e, "url.domain"),
            num(&e, "http.response.status_code"),
            s(&e, "event.outcome")
        ),
        ("blocked.example.test", Some(403), "failure")
    );
    // nginx has no CONNECT: it answers 400 before reading headers, but the line names the target.
    let e = norm(&line_of(f, "CONNECT origin.example.test:31443"));
    assert_eq!(
        view(&e),
        (
            "web.access",
            "origin.example.test",
            Some(31443),
            "",
            "CONNECT",
            Some(400),
            "",
            "access",
            "failure",
            ""
        )
    );
    assert_eq!(s(&e, "user_agent.original"), "");
    // auth_basic on /private/: none, a wrong password (nginx logs the name tried), alice.
    let got = private_rows(f, |e| s(e, "event.outcome"));
    assert_eq!(
        got,
        [
            (String::new(), Some(401), "failure".to_owned()),
            ("alice".to_owned(), Some(401), "failure".to_owned()),
            ("alice".to_owned(), Some(200), "success".to_owned()),
        ]
    );
}

#[test]
fn apache_forward_proxy_real_lines_give_their_fields() {
    let f = APACHE;
    let e = norm(&line_of(f, "GET http://localhost:31180/ "));
    assert_eq!(
        view(&e),
        (
            "web.access",
            "localhost",
            Some(31180),
            "http",
            "GET",
            Some(200),
            "",
            "access",
            "success",
            ""
        )
    );
    // `%t` in Apache's zone (-0500) → UTC.
    assert_eq!(s(&e, "@timestamp"), "2026-11-30T08:56:36Z");
    // mod_proxy_connect: a tunnel to an AllowCONNECT port, a refused port, a closed port.
    let e = norm(&line_of(f, "CONNECT localhost:31443"));
    assert_eq!(
        view(&e),
        (
            "web.access",
            "localhost",
            Some(31443),
            "",
            "CONNECT",
            Some(200),
            "",
            "access",
            "success",
            ""
        )
    );
    let e = norm(&line_of(f, "CONNECT 127.0.0.1:31180"));
    assert_eq!(
        (num(&e, "http.response.status_code"), s(&e, "event.outcome")),
        (Some(403), "failure")
    );
    let e = norm(&line_of(f, "CONNECT 127.0.0.1:31444"));
    assert_eq!(num(&e, "http.response.status_code"), Some(503));
    // `Require all denied` for blocked.example.test.
    let e = norm(&line_of(f, "GET http://blocked.example.test/"));
    assert_eq!(
        (s(&e, "url.domain"), num(&e, "http.response.status_code")),
        ("blocked.example.test", Some(403))
    );
    let e = norm(&line_of(f, "\"HEAD "));
    assert_eq!(
        (s(&e, "http.request.method"), s(&e, "url.domain")),
        ("HEAD", "127.0.0.1")
    );
    // Proxy Basic auth: 407 is the proxy's own refusal (denied), with the name tried, then alice.
    let got = private_rows(f, typ);
    assert_eq!(
        got,
        [
            (String::new(), Some(407), "denied".to_owned()),
            ("alice".to_owned(), Some(407), "denied".to_owned()),
            ("alice".to_owned(), Some(200), "access".to_owned()),
        ]
    );
}

/// Every line of the four files is claimed by its own parser alone, auto-detected or forced; and
/// nginx/Apache lines of the same requests are never taken for squid (no `%Ss:%Sh` pair).
#[test]
fn proxy_lines_are_claimed_only_by_their_parser() {
    let mut n = Normalizer::new();
    let mut checked = 0;
    for (file, own) in [
        (SQUID_COMBINED, "squid"),
        (SQUID_NATIVE, "squid"),
        (NGINX, "web.access"),
        (APACHE, "web.access"),
    ] {
        for line in data(file).lines() {
            assert_eq!(n.normalize(line.as_bytes(), &CTX).dataset, own, "{line}");
            for ds in datasets().iter().filter(|d| **d != own) {
                let e = n.normalize_as(ds, line.as_bytes(), &CTX).expect("known");
                assert_eq!(e.dataset, "unparsed", "{ds} claimed {line}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 21 + 21 + 19 + 19);
}

/// Attack: hostile clients, as the real daemons logged them. A User-Agent that ends like squid's
/// `%Ss:%Sh` pair and carries quotes (squid writes it unescaped, nginx as `\x22`, Apache as
/// `\"`), and a raw request whose target holds quotes, a fake status and a fake code pair
/// (squid drops its spaces and keeps its quotes). The UA cannot make an nginx/Apache line squid's
/// or change squid's action; the target cannot plant a status or hide the line.
#[test]
fn hostile_user_agents_and_targets_cannot_forge_proxy_fields() {
    let ua_squid = line_of(SQUID_COMBINED, "TCP_DENIED:HIER_NONE\" TCP_MISS");
    let e = norm(&ua_squid);
    assert_eq!(
        (
            e.dataset,
            s(&e, "event.action"),
            typ(&e),
            num(&e, "http.response.status_code"),
            num(&e, "http.response.bytes"),
            s(&e, "http.request.referrer"),
            s(&e, "user_agent.original"),
        ),
        (
            "squid",
            "TCP_MISS",
            "access",
            Some(200),
            Some(338),
            "",
            "x\" 200 1 \"-\" \"y TCP_DENIED:HIER_NONE"
        )
    );
    let target = line_of(SQUID_COMBINED, "/a\"b\"2009");
    let e = norm(&target);
    assert_eq!(
        (
            e.dataset,
            s(&e, "event.action"),
            num(&e, "http.response.status_code"),
            s(&e, "url.domain"),
            num(&e, "url.port"),
            s(&e, "url.original"),
        ),
        (
            "squid",
            "TCP_MISS",
            Some(404),
            "127.0.0.1",
            Some(31180),
            "http://127.0.0.1:31180/a\"b\"2009\"-\"\"-\"TCP_MISS:HIER_DIRECT"
        )
    );
    for (file, needle, ua) in [
        (
            NGINX,
            "y TCP_DENIED:HIER_NONE",
            "x\\x22 200 1 \\x22-\\x22 \\x22y TCP_DENIED:HIER_NONE",
        ),
        (
            APACHE,
            "y TCP_DENIED:HIER_NONE",
            "x\" 200 1 \"-\" \"y TCP_DENIED:HIER_NONE",
        ),
    ] {
        let e = norm(&line_of(file, needle));
        assert_eq!(
            (
                e.dataset,
                s(&e, "event.action"),
                typ(&e),
                num(&e, "http.response.status_code"),
                s(&e, "user_agent.original"),
            ),
            ("web.access", "", "access", Some(200), ua),
            "{file}"
        );
    }
    // nginx refuses the raw request (400) and logs it with `\x22`; Apache cuts it and escapes
    // its quotes: the status is the daemon's, never the one the client wrote.
    let e = norm(&line_of(NGINX, "/a\\x22b"));
    assert_eq!(
        (
            e.dataset,
            num(&e, "http.response.status_code"),
            s(&e, "url.domain")
        ),
        ("web.access", Some(400), "127.0.0.1")
    );
    let e = norm(&line_of(APACHE, "/a\\\"b"));
    assert_eq!(
        (
            e.dataset,
            num(&e, "http.response.status_code"),
            s(&e, "url.original")
        ),
        ("web.access", Some(400), "http://127.0.0.1:31180/a\"b\"")
    );
}
