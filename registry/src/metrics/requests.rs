//! Request counters, latency histograms and body byte counters: fixed tables of atomics
//! indexed by route kind, method and status class, so recording a request takes a few
//! relaxed atomic adds and no lock or map lookup. Only label sets that were seen are
//! exposed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// What a request was for, as a metric label. Derived from the parsed route, never from the
/// raw path: repository names, tags and digests must not become label values (each would
/// be a new time series, and names can be private).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// `/v2/`.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
    /// `/v2/<name>/blobs/uploads/…`.
    Upload,
    /// `/v2/<name>/referrers/<digest>`.
    Referrers,
    /// `/service/token`.
    Token,
    /// `/api/v1/…`.
    Api,
    /// `/healthz`.
    Healthz,
    /// `/metrics`.
    Metrics,
    /// Anything else, including `/v2/` paths that do not parse.
    Other,
}

impl RouteKind {
    const ALL: [RouteKind; 12] = [
        RouteKind::Base,
        RouteKind::Catalog,
        RouteKind::Tags,
        RouteKind::Manifest,
        RouteKind::Blob,
        RouteKind::Upload,
        RouteKind::Referrers,
        RouteKind::Token,
        RouteKind::Api,
        RouteKind::Healthz,
        RouteKind::Metrics,
        RouteKind::Other,
    ];
    const COUNT: usize = RouteKind::ALL.len();

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            RouteKind::Base => "base",
            RouteKind::Catalog => "catalog",
            RouteKind::Tags => "tags",
            RouteKind::Manifest => "manifest",
            RouteKind::Blob => "blob",
            RouteKind::Upload => "upload",
            RouteKind::Referrers => "referrers",
            RouteKind::Token => "token",
            RouteKind::Api => "api",
            RouteKind::Healthz => "healthz",
            RouteKind::Metrics => "metrics",
            RouteKind::Other => "other",
        }
    }

    /// The kind of a path outside `/v2`.
    fn of_path(path: &str) -> RouteKind {
        match path {
            "/service/token" => RouteKind::Token,
            "/healthz" => RouteKind::Healthz,
            "/metrics" => RouteKind::Metrics,
            p if p.starts_with("/api/") => RouteKind::Api,
            _ => RouteKind::Other,
        }
    }
}

/// Methods with a label of their own; any other is counted as `other`, so a client
/// inventing methods cannot add time series.
const METHODS: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "other"];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
const CELLS: usize = RouteKind::COUNT * METHODS.len() * CLASSES.len();

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::POST => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        _ => 6,
    }
}

fn class_index(s: StatusCode) -> usize {
    match s.as_u16() / 100 {
        c @ 1..=5 => usize::from(c) - 1,
        _ => 5,
    }
}

/// Upper bounds of the latency buckets, in seconds: from a cached manifest (well under a
/// millisecond) to a large upload's final PUT (hashing and fsync of gigabytes).
const LATENCY_BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];
/// One more bucket for everything above the last bound.
const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// A latency histogram of atomics: a count per bucket (not cumulative; the encoder sums)
/// and the total in nanoseconds.
struct Latency {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64, nanos: u64) {
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// Everything recorded per request.
pub(crate) struct RequestMetrics {
    /// Requests by kind × method × status class.
    requests: Box<[AtomicU64; CELLS]>,
    latency: [Latency; RouteKind::COUNT],
    bytes_in: [AtomicU64; RouteKind::COUNT],
    bytes_out: [AtomicU64; RouteKind::COUNT],
}

impl RequestMetrics {
    pub(crate) fn new() -> RequestMetrics {
        RequestMetrics {
            requests: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| Latency::new()),
            bytes_in: std::array::from_fn(|_| AtomicU64::new(0)),
            bytes_out: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn bytes(&self, direction: Direction) -> &[AtomicU64; RouteKind::COUNT] {
        match direction {
            Direction::In => &self.bytes_in,
            Direction::Out => &self.bytes_out,
        }
    }

    fn count(&self, kind: RouteKind, method: usize, status: StatusCode) {
        let cell = (kind as usize * METHODS.len() + method) * CLASSES.len() + class_index(status);
        self.requests[cell].fetch_add(1, Relaxed);
    }
}

/// The middleware, as a [`tower::Layer`]: a request costs a few relaxed atomic additions
/// and one allocation (the answer's counting body), with no lock and no map lookup.
#[derive(Clone)]
pub(crate) struct Track(pub(crate) Arc<RequestMetrics>);

impl<S> tower::Layer<S> for Track {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// A service counting its requests: each when its answer's head is ready (the latency is
/// the time to that point; a large body streams after it), and body bytes as they pass.
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
}

impl<S, E> tower::Service<Request> for Tracked<S>
where
    S: tower::Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = Tracking<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let method = method_index(req.method());
        let path = req.uri().path();
        let kind = crate::routes::v2_kind(path).unwrap_or_else(|| RouteKind::of_path(path));
        // Bodies that are known to be empty (most GETs) are not wrapped.
        let req = if req.body().is_end_stream() {
            req
        } else {
            let metrics = self.metrics.clone();
            req.map(|inner| Body::new(Counted::new(inner, metrics, Direction::In, kind)))
        };
        Tracking {
            inner: self.inner.call(req),
            metrics: Some(self.metrics.clone()),
            start,
            method,
            kind,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Tracked`] service.
    pub(crate) struct Tracking<F> {
        #[pin]
        inner: F,
        metrics: Option<Arc<RequestMetrics>>,
        start: Instant,
        method: usize,
        kind: RouteKind,
    }
}

impl<F, E> Future for Tracking<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = std::task::ready!(this.inner.poll(cx))?;
        let m = this.metrics.take().expect("polled after completion");
        let kind = *this.kind;
        let elapsed = this.start.elapsed();
        m.count(kind, *this.method, resp.status());
        m.latency[kind as usize].observe(
            elapsed.as_secs_f64(),
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        );
        Poll::Ready(Ok(
            resp.map(|inner| Body::new(Counted::new(inner, m, Direction::Out, kind)))
        ))
    }
}
/// A body counting its bytes into one of the byte counters as each frame passes.
struct Counted {
    inner: Body,
    metrics: Arc<RequestMetrics>,
    direction: Direction,
    kind: RouteKind,
}

impl Counted {
    fn new(inner: Body, metrics: Arc<RequestMetrics>, direction: Direction, kind: RouteKind) -> Counted {
        Counted {
            inner,
            metrics,
            direction,
            kind,
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.metrics.bytes(this.direction)[this.kind as usize].fetch_add(data.len() as u64, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl RequestMetrics {
    /// Expose the tables in `registry`.
    pub(crate) fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register("http_requests", "Requests answered", Requests(self.clone()));
        registry.register_with_unit(
            "http_request_duration",
            "Time until the answer's head was ready",
            Unit::Seconds,
            Durations(self.clone()),
        );
        registry.register_with_unit(
            "http_request_body",
            "Request body bytes received",
            Unit::Bytes,
            BodyBytes(self.clone(), Direction::In),
        );
        registry.register_with_unit(
            "http_response_body",
            "Response body bytes handed to the connection",
            Unit::Bytes,
            BodyBytes(self.clone(), Direction::Out),
        );
    }
}

fn counter(e: &mut MetricEncoder, labels: &[(&str, &str)], v: u64) -> fmt::Result {
    e.encode_family(&labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

struct Requests(Arc<RequestMetrics>);

impl EncodeMetric for Requests {
    fn encode(&self, mut e: MetricEncoder) -> fmt::Result {
        for kind in RouteKind::ALL {
            for (m, method) in METHODS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let cell = (kind as usize * METHODS.len() + m) * CLASSES.len() + c;
                    let v = self.0.requests[cell].load(Relaxed);
                    if v > 0 {
                        counter(
                            &mut e,
                            &[("route", kind.label()), ("method", method), ("status", class)],
                            v,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

struct Durations(Arc<RequestMetrics>);

impl EncodeMetric for Durations {
    fn encode(&self, mut e: MetricEncoder) -> fmt::Result {
        for kind in RouteKind::ALL {
            let h = &self.0.latency[kind as usize];
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(h.buckets.iter().map(|b| b.load(Relaxed)))
                .collect();
            let count = buckets.iter().map(|(_, n)| n).sum::<u64>();
            if count == 0 {
                continue;
            }
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            e.encode_family(&[("route", kind.label())])?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Clone, Copy)]
enum Direction {
    In,
    Out,
}

struct BodyBytes(Arc<RequestMetrics>, Direction);

impl EncodeMetric for BodyBytes {
    fn encode(&self, mut e: MetricEncoder) -> fmt::Result {
        let table = self.0.bytes(self.1);
        for kind in RouteKind::ALL {
            let v = table[kind as usize].load(Relaxed);
            if v > 0 {
                counter(&mut e, &[("route", kind.label())], v)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

// The registry wants `Debug` of what it holds; the tables are not worth printing.
macro_rules! opaque_debug {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($t))
            }
        }
    )*};
}
opaque_debug!(Requests, Durations, BodyBytes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let h = Latency::new();
        h.observe(0.0001, 100_000);
        h.observe(0.001, 1_000_000);
        h.observe(1000.0, 1_000_000_000_000);
        let counts: Vec<u64> = h.buckets.iter().map(|b| b.load(Relaxed)).collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1, "a bound is inclusive");
        assert_eq!(counts[BUCKETS - 1], 1);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(h.sum_nanos.load(Relaxed), 1_000_001_100_000);
    }

    #[test]
    fn status_classes_and_methods_stay_in_their_tables() {
        assert_eq!(CLASSES[class_index(StatusCode::OK)], "2xx");
        assert_eq!(CLASSES[class_index(StatusCode::NOT_FOUND)], "4xx");
        assert_eq!(CLASSES[class_index(StatusCode::from_u16(999).unwrap())], "other");
        assert_eq!(METHODS[method_index(&Method::PATCH)], "PATCH");
        assert_eq!(METHODS[method_index(&Method::from_bytes(b"BREW").unwrap())], "other");
        assert_eq!(METHODS[method_index(&Method::OPTIONS)], "other");
    }

    #[test]
    fn paths_outside_v2_have_fixed_kinds() {
        assert_eq!(RouteKind::of_path("/api/v1/projects"), RouteKind::Api);
        assert_eq!(RouteKind::of_path("/service/token"), RouteKind::Token);
        assert_eq!(RouteKind::of_path("/metrics"), RouteKind::Metrics);
        assert_eq!(RouteKind::of_path("/secret-team/app"), RouteKind::Other);
    }
}
