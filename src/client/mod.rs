//! HTTP: the ureq agent, headers, retries and timeouts, and HTTP failures turned into
//! typed errors with their exit codes (README "Reliability"; docs/PROTOCOL.md, Errors, Retries).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use ureq::http::{Response, header::HeaderMap};
use ureq::tls::{RootCerts, TlsConfig};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};
use ureq::{Agent, Body, RequestBuilder};

use crate::config::{ApiKey, Network};
pub use crate::error::AttemptError;
use crate::error::{ApiError, ExitKind, Failure};
use crate::output;

mod connector;
mod retry;
pub use connector::finish_body;
use connector::{BoundedReads, TlsOnce};
#[cfg(test)]
use retry::*;
pub use retry::{RateGate, backoff, retry_after};

pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// How much of an error body is read: enough for any JSON envelope or an HTML snippet.
const MAX_ERROR_BODY: u64 = 64 * 1024;

pub struct Client {
    agent: Agent,
    base_url: String,
    key: ApiKey,
    net: Network,
    verbose: bool,
    /// Shared with the other workers of a batch.
    gate: Option<Arc<RateGate>>,
}

/// What the handler of a 2xx response may need to know about it.
pub struct CallInfo {
    pub request_id: Option<String>,
    /// The settings in force for this call (its effective `--timeout`), to describe
    /// a failed read.
    pub net: Network,
}

impl Client {
    pub fn new(net: &Network, key: ApiKey, verbose: bool) -> Client {
        Client::build(net, key, verbose, None, None)
    }

    /// A client for `workers` threads at once: it keeps up to one idle connection per
    /// worker, and every attempt first waits out the pause that `gate` holds.
    pub fn shared(
        net: &Network,
        key: ApiKey,
        verbose: bool,
        workers: usize,
        gate: Arc<RateGate>,
    ) -> Client {
        Client::build(net, key, verbose, Some(workers), Some(gate))
    }

    fn build(
        net: &Network,
        key: ApiKey,
        verbose: bool,
        pool: Option<usize>,
        gate: Option<Arc<RateGate>>,
    ) -> Client {
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        let mut config = Agent::config_builder()
            .http_status_as_error(false)
            // A redirect would carry x-api-key to another host, perhaps over plain
            // http: never follow one; a 3xx is reported like any other status.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(net.connect_timeout))
            .tls_config(tls)
            // No Accept-Encoding: cs-msg decodes nothing, so it asks for nothing (ureq
            // would add one if a crate in the build turned on its gzip or brotli
            // feature); a body compressed anyway is reported (`response.rs`).
            .accept_encoding("")
            .user_agent(concat!("cs-msg/", env!("CARGO_PKG_VERSION")));
        if base_is_loopback(&net.base_url) {
            // A local server is reached directly: a proxy would see the key (http).
            config = config.proxy(None);
        }
        if let Some(n) = pool {
            config = config
                .max_idle_connections(n.max(10))
                .max_idle_connections_per_host(n.max(3))
                // ureq gives every connection 128 KiB for input and 128 KiB for output,
                // allocated and zeroed in full: 16 MB at -j 64 (BENCHMARKS.md, "Batch
                // at scale"). A batch line's answer needs far less. Input stays at
                // 64 KiB, ureq's limit on a response head, which must fit in it; a
                // larger request body is only written in more pieces.
                .input_buffer_size(64 * 1024)
                .output_buffer_size(16 * 1024);
        }
        // ureq's default connectors (DefaultConnector: CONNECT proxy, TCP, rustls; its
        // SOCKS and missing-provider links only warn, and cs-msg configures neither),
        // composed here so that the TLS link can be wrapped in `TlsOnce`; each
        // connection wrapped in `Bounded` so that `finish_body` can bound the wait for
        // the end of a body.
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(TlsOnce::default())
                .chain(BoundedReads);
        let agent = Agent::with_parts(config.build(), connector, DefaultResolver::default());
        Client {
            agent,
            base_url: net.base_url.clone(),
            key,
            net: net.clone(),
            verbose,
            gate,
        }
    }

    /// `--fallback-model`, if given.
    pub fn fallback_model(&self) -> Option<&str> {
        self.net.fallback_model.as_deref()
    }

    /// POSTs `body` to `path`, retrying transient failures, and hands each 2xx response
    /// to `handle`. `streaming` arms the idle timeout.
    pub fn post<T>(
        &self,
        path: &str,
        body: &[u8],
        streaming: bool,
        handle: impl FnMut(Response<Body>, &CallInfo) -> Result<T, AttemptError>,
    ) -> Result<T> {
        self.call(path, Some(body), streaming, handle)
    }

    /// GETs `path` (which may carry a query), with the same retries as `post`.
    pub fn get<T>(
        &self,
        path: &str,
        handle: impl FnMut(Response<Body>, &CallInfo) -> Result<T, AttemptError>,
    ) -> Result<T> {
        self.call(path, None, false, handle)
    }

    fn call<T>(
        &self,
        path: &str,
        body: Option<&[u8]>,
        streaming: bool,
        mut handle: impl FnMut(Response<Body>, &CallInfo) -> Result<T, AttemptError>,
    ) -> Result<T> {
        let url = format!("{}{}", self.base_url, path);
        let method = if body.is_some() { "POST" } else { "GET" };
        let net = self.net.for_transport(streaming);
        let started = Instant::now();
        let deadline = net.timeout.map(|t| started + t);
        let mut retries = 0u32;
        loop {
            if let Some(gate) = &self.gate {
                let pause = gate.remaining(Instant::now());
                if self.verbose && !pause.is_zero() {
                    output::info(&format!(
                        "waiting {:.2} s: the batch is pausing for a rate limit",
                        pause.as_secs_f64()
                    ));
                }
                gate.wait(deadline);
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return Err(timeout_failure(&net).into());
            }
            if self.verbose {
                output::info(&format!("{method} {url} (attempt {})", retries + 1));
            }
            let accept = if streaming {
                "text/event-stream"
            } else {
                "application/json"
            };
            let sent = match body {
                Some(body) => self
                    .with_headers(self.agent.post(&url), accept)
                    .header("content-type", "application/json")
                    .config()
                    .timeout_global(remaining)
                    .timeout_per_read(streaming.then_some(net.idle_timeout))
                    .build()
                    .send(body),
                None => self
                    .with_headers(self.agent.get(&url), accept)
                    .config()
                    .timeout_global(remaining)
                    .build()
                    .call(),
            };
            let attempt_started = Instant::now();
            let outcome = match sent {
                Ok(response) => self.handle_response(response, &mut handle, attempt_started, &net),
                Err(e) => {
                    let retryable = is_retryable_transport(&e);
                    Outcome::Failed {
                        failure: transport_failure(e, &self.base_url, &net),
                        retryable,
                        delay: None,
                    }
                }
            };
            match outcome {
                Outcome::Done(t) => return Ok(t),
                Outcome::Fatal(e) => return Err(e),
                Outcome::Failed {
                    failure,
                    retryable,
                    delay,
                } => {
                    let wait = delay.unwrap_or_else(|| backoff(self.net.backoff_initial, retries));
                    // Told to slow down: the other workers of a batch pause as well.
                    if failure.kind == ExitKind::RateLimited
                        && let Some(gate) = &self.gate
                    {
                        gate.pause_until(Instant::now() + wait);
                    }
                    if !retryable || retries >= self.net.max_retries {
                        let suffix = if retries > 0 {
                            format!(" (after {retries} retries)")
                        } else {
                            String::new()
                        };
                        return Err(failure.with_suffix(&suffix).into());
                    }
                    if let Some(d) = deadline
                        && Instant::now() + wait >= d
                    {
                        return Err(failure
                            .with_suffix("; no time left to retry within --timeout")
                            .into());
                    }
                    if self.verbose {
                        output::info(&format!(
                            "retry {}/{} in {:.2} s after: {failure}",
                            retries + 1,
                            self.net.max_retries,
                            wait.as_secs_f64()
                        ));
                    }
                    std::thread::sleep(wait);
                    retries += 1;
                }
            }
        }
    }

    fn with_headers<B>(&self, request: RequestBuilder<B>, accept: &str) -> RequestBuilder<B> {
        let request = request
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("accept", accept);
        if self.net.betas.is_empty() {
            request
        } else {
            request.header("anthropic-beta", self.net.betas.join(","))
        }
    }

    fn handle_response<T>(
        &self,
        mut response: Response<Body>,
        handle: &mut impl FnMut(Response<Body>, &CallInfo) -> Result<T, AttemptError>,
        attempt_started: Instant,
        net: &Network,
    ) -> Outcome<T> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let request_id = header(&headers, "request-id");
        if self.verbose {
            output::info(&format!(
                "HTTP {status}, request-id {}, headers after {} ms",
                request_id.as_deref().unwrap_or("none"),
                attempt_started.elapsed().as_millis()
            ));
        }
        if (200..300).contains(&status) {
            let info = CallInfo {
                request_id: request_id.clone(),
                net: net.clone(),
            };
            return match handle(response, &info) {
                Ok(t) => Outcome::Done(t),
                Err(AttemptError::Retry(failure)) => Outcome::Failed {
                    failure,
                    retryable: true,
                    delay: None,
                },
                Err(AttemptError::Fatal(e)) => Outcome::Fatal(e),
            };
        }
        let mut body = Vec::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut body);
        let error = ApiError::from_body(Some(status), &body, request_id);
        let retryable = match header(&headers, "x-should-retry").as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => matches!(status, 408 | 409 | 429) || status >= 500,
        };
        Outcome::Failed {
            failure: error.into_failure(),
            retryable,
            delay: retry_after(&headers, SystemTime::now()),
        }
    }
}

/// Reads a whole 2xx body through `limit`. A read that fails (a dropped connection, a
/// timeout) is a network failure, retried like any other while nothing was printed;
/// a body over the limit is malformed.
pub fn read_capped(
    response: Response<Body>,
    limit: u64,
    info: &CallInfo,
) -> Result<Vec<u8>, AttemptError> {
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| AttemptError::Retry(info.read_failure(e)))?;
    if bytes.len() as u64 > limit {
        return Err(Failure::malformed(format!(
            "the response body is larger than {} MiB",
            limit / (1024 * 1024)
        ))
        .with_request_id(info.request_id.as_deref())
        .into());
    }
    Ok(bytes)
}

impl CallInfo {
    /// Describes a failed read of this response's body (exit 5).
    pub fn read_failure(&self, e: std::io::Error) -> Failure {
        transport_failure(ureq::Error::from(e), &self.net.base_url, &self.net)
            .with_request_id(self.request_id.as_deref())
    }
}

/// The base URL points at this machine: no proxy is used for it.
pub fn base_is_loopback(base_url: &str) -> bool {
    base_url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(crate::config::is_loopback))
        .unwrap_or(false)
}

enum Outcome<T> {
    Done(T),
    Fatal(anyhow::Error),
    Failed {
        failure: Failure,
        retryable: bool,
        delay: Option<Duration>,
    },
}

fn timeout_failure(net: &Network) -> Failure {
    let secs = net.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
    Failure::new(
        ExitKind::Network,
        format!("timed out: the call took longer than --timeout {secs} s"),
    )
}

/// Failures before a response arrived: connection refused, DNS, timeouts short of the
/// whole-call limit. TLS and URL problems will not fix themselves: a certificate the
/// roots do not vouch for reaches here as an I/O error of kind `InvalidData` (rustls
/// through ureq), and is not retried.
fn is_retryable_transport(e: &ureq::Error) -> bool {
    use ureq::Error::*;
    match e {
        Timeout(t) => *t != ureq::Timeout::Global,
        Io(io) if io.kind() == std::io::ErrorKind::InvalidData => false,
        Io(_) | ConnectionFailed | HostNotFound | Protocol(_) | BodyStalled => true,
        _ => false,
    }
}

/// Describes a transport error, naming the limit that was hit for timeouts.
pub fn transport_failure(e: ureq::Error, base_url: &str, net: &Network) -> Failure {
    use ureq::Error::*;
    let message = match e {
        Timeout(ureq::Timeout::Global) => format!(
            "timed out: the call took longer than --timeout {} s",
            net.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0)
        ),
        Timeout(ureq::Timeout::PerRead) => format!(
            "timed out: no data from the server for {} s (--idle-timeout)",
            net.idle_timeout.as_secs_f64()
        ),
        Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => format!(
            "timed out connecting to {base_url} after {} s (--connect-timeout)",
            net.connect_timeout.as_secs_f64()
        ),
        Timeout(t) => format!("timed out ({t})"),
        HostNotFound => format!("could not resolve the host of {base_url}"),
        ConnectionFailed => format!("could not connect to {base_url}"),
        Io(io) => format!(
            "network error talking to {base_url}: {}",
            crate::files::io_reason(&io)
        ),
        other => format!("network error talking to {base_url}: {other}"),
    };
    Failure::new(ExitKind::Network, message)
}

pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let d = |p: &[(&'static str, &str)]| retry_after(&headers(p), now);
        assert_eq!(
            d(&[("retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            d(&[("retry-after-ms", "100"), ("retry-after", "20")]),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            d(&[("retry-after", "1.5")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(d(&[("retry-after", "3600")]), Some(Duration::from_secs(60)));
        assert_eq!(d(&[("retry-after", "-1")]), None);
        assert_eq!(d(&[("retry-after", "1e30")]), Some(Duration::from_secs(60)));
        assert_eq!(
            d(&[("retry-after-ms", "1e300")]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(d(&[("retry-after", "soon")]), None);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(d(&[("retry-after", &date)]), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(d(&[("retry-after", &past)]), Some(Duration::ZERO));
        assert_eq!(d(&[]), None);
    }

    #[test]
    fn tls_certificate_errors_are_not_retried() {
        let bad_cert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(!is_retryable_transport(&ureq::Error::Io(bad_cert)));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_retryable_transport(&ureq::Error::Io(reset)));
    }

    #[test]
    fn transport_failures_name_the_limit_and_exit_5() {
        let net = Network {
            base_url: "https://gw.example".into(),
            betas: vec![],
            max_retries: 2,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_millis(1500),
            timeout: Some(Duration::from_secs(30)),
            backoff_initial: Duration::from_millis(500),
            fallback_model: None,
            drain_bound: Duration::from_millis(50),
        };
        let cases = [
            (
                ureq::Error::Timeout(ureq::Timeout::Connect),
                "timed out connecting to https://gw.example after 10 s (--connect-timeout)",
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::PerRead),
                "timed out: no data from the server for 1.5 s (--idle-timeout)",
            ),
            (
                ureq::Error::Timeout(ureq::Timeout::Global),
                "timed out: the call took longer than --timeout 30 s",
            ),
            (
                ureq::Error::HostNotFound,
                "could not resolve the host of https://gw.example",
            ),
        ];
        for (error, message) in cases {
            let retryable = is_retryable_transport(&error);
            let f = transport_failure(error, "https://gw.example", &net);
            assert_eq!(f.message, message);
            assert_eq!(f.kind, ExitKind::Network);
            // Only the whole-call limit is final.
            assert_eq!(retryable, !message.contains("--timeout"));
        }
    }

    #[test]
    fn rate_gate_pauses_are_only_ever_extended() {
        let gate = RateGate::default();
        let t0 = Instant::now();
        assert_eq!(gate.remaining(t0), Duration::ZERO);
        gate.pause_until(t0 + Duration::from_millis(300));
        gate.pause_until(t0 + Duration::from_millis(100));
        assert_eq!(gate.remaining(t0), Duration::from_millis(300));
        assert_eq!(
            gate.remaining(t0 + Duration::from_millis(200)),
            Duration::from_millis(100)
        );
        assert_eq!(gate.remaining(t0 + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn rate_gate_holds_every_waiter_and_respects_deadlines() {
        let gate = Arc::new(RateGate::default());
        let start = Instant::now();
        gate.pause_until(start + Duration::from_millis(60));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let gate = Arc::clone(&gate);
                std::thread::spawn(move || {
                    gate.wait(None);
                    start.elapsed()
                })
            })
            .collect();
        // Extended while they wait: they wait for the longer pause.
        gate.pause_until(start + Duration::from_millis(120));
        for w in waiters {
            assert!(w.join().unwrap() >= Duration::from_millis(120));
        }
        gate.pause_until(Instant::now() + Duration::from_secs(30));
        let t = Instant::now();
        gate.wait(Some(t + Duration::from_millis(20)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn restart_stagger_is_a_bounded_share_of_the_pause() {
        let ms = Duration::from_millis;
        assert_eq!(restart_stagger(ms(400), 0.0), Duration::ZERO);
        assert_eq!(restart_stagger(ms(400), 0.5), ms(50));
        assert_eq!(restart_stagger(Duration::from_secs(60), 0.5), ms(500));
        assert_eq!(restart_stagger(Duration::ZERO, 0.9), Duration::ZERO);
        // Nothing to wait for: no pause, no stagger.
        let t = Instant::now();
        RateGate::default().wait(None);
        assert!(t.elapsed() < ms(50));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let half = Duration::from_millis(500);
        for (n, full) in [
            (0, 500),
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (4, 8000),
            (9, 8000),
        ] {
            let d = backoff(half, n).as_millis();
            assert!(d <= full && d >= full * 3 / 4, "retry {n}: {d} ms");
        }
    }
}
