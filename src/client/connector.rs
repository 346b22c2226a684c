//! The links cs-msg adds to ureq's connector chain (`Client::build` in mod.rs): the
//! TLS link that builds its configuration once per process ([`TlsOnce`]), and the
//! bounded reads that let [`finish_body`] return a connection to the pool without
//! waiting on a server that holds the socket open ([`Bounded`]).

use std::cell::Cell;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, Transport,
};

/// After a stream's `message_stop`, reads what is left of the body (normally just the
/// chunked terminator, already received with the last event) so that ureq returns the
/// connection to the agent's pool: a batch, the fallback and the turns of a tool loop
/// then reuse it instead of paying a new TCP and TLS handshake. ureq pools a
/// connection only when its body was read to the end. No read waits past `bound`
/// (nor past 64 KiB of trailing bytes): a relay that holds the socket open after the
/// answer is dropped, and the answer is not held up for it.
pub fn finish_body(body: &mut impl Read, bound: Duration) {
    let previous = READ_DEADLINE.replace(Some(Instant::now() + bound));
    let mut buf = [0u8; 8 * 1024];
    let mut left = 64 * 1024usize;
    loop {
        match body.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if n >= left => break,
            Ok(n) => left -= n,
        }
    }
    READ_DEADLINE.set(previous);
}

thread_local! {
    /// While set, no read on this thread's connections waits past this instant
    /// ([`finish_body`]). ureq reads on the calling thread, so a thread-local reaches
    /// exactly the reads of the body being finished.
    static READ_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// ureq's TLS link (rustls), with its configuration built once per process. ureq
/// builds that configuration, and with it the root store (rustls-platform-verifier
/// reads the system bundle or SSL_CERT_FILE: ~150 certificates), on a TLS
/// connection's first handshake, and caches it on the agent only for requests without
/// a configuration of their own. Every cs-msg request has one (its timeouts), so
/// every new connection read the whole store again: at -j 64, 64 reads, 9 MB more
/// peak memory and twice the CPU time (BENCHMARKS.md, "Batch at scale"). cs-msg never
/// sets TLS options per request, so this link presents each connection to ureq as
/// agent-level, and before the first TLS connection goes ahead it has ureq build and
/// cache the configuration once, on a connection that fails at its first write
/// ([`Unconnected`]), while the others wait (a batch's workers all connect at once;
/// that takes a millisecond or two, not a round trip). Plain HTTP never reads the
/// store.
#[derive(Default)]
pub(super) struct TlsOnce {
    tls: RustlsConnector,
    first: Mutex<()>,
    configured: AtomicBool,
}

impl std::fmt::Debug for TlsOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOnce").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for TlsOnce {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let agent_level = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: false,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: Arc::clone(&details.current_time),
            run_connector: Arc::clone(&details.run_connector),
            register_shutdown: Arc::clone(&details.register_shutdown),
        };
        if details.needs_tls() && !self.configured.load(Ordering::Acquire) {
            let _alone = self.first.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.configured.load(Ordering::Acquire) {
                // ureq builds and caches the configuration before the handshake's
                // first write, which fails here. If building it failed, the real
                // connection below fails the same way.
                let _ = self.tls.connect(&agent_level, Some(Unconnected::default()));
                self.configured.store(true, Ordering::Release);
            }
        }
        self.tls
            .connect(&agent_level, chained)
            .map(|t| t.map(Transport::boxed))
    }
}

/// A connection that fails at its first write (for [`TlsOnce`]).
#[derive(Debug)]
struct Unconnected(LazyBuffers);

impl Default for Unconnected {
    fn default() -> Self {
        Unconnected(LazyBuffers::new(1024, 1024))
    }
}

impl Transport for Unconnected {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.0
    }

    fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), ureq::Error> {
        Err(ureq::Error::ConnectionFailed)
    }

    fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
        Err(ureq::Error::ConnectionFailed)
    }

    fn is_open(&mut self) -> bool {
        false
    }
}

/// The last link of the connector chain: wraps each connection in [`Bounded`].
#[derive(Debug)]
pub(super) struct BoundedReads;

impl Connector<Box<dyn Transport>> for BoundedReads {
    type Out = Bounded;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Bounded>, ureq::Error> {
        Ok(chained.map(Bounded))
    }
}

/// A connection whose reads honour [`READ_DEADLINE`]; otherwise it is the connection
/// it wraps (TCP, or TLS over TCP).
#[derive(Debug)]
pub(super) struct Bounded(Box<dyn Transport>);

impl Transport for Bounded {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.0.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, mut timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if let Some(deadline) = READ_DEADLINE.get() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ureq::Error::Timeout(ureq::Timeout::PerRead));
            }
            let left = ureq::unversioned::transport::time::Duration::from(left);
            timeout.after = timeout.after.min(left);
            timeout.per_read = Some(timeout.per_read.map_or(left, |p| p.min(left)));
        }
        self.0.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}
