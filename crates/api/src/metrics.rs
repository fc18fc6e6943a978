//! Prometheus metrics: request counts by status class and a latency histogram, plus
//! the photo pool's load. Kept as process-local atomics; each replica is scraped on
//! its own, which is how Prometheus expects replicas to be counted.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    /// Index 0..5 for 1xx..5xx.
    by_class: [AtomicU64; 5],
    /// Cumulative counts per bucket upper bound, then +Inf.
    buckets: [AtomicU64; 12],
    sum_micros: AtomicU64,
}

impl Metrics {
    pub fn record(&self, status: u16, seconds: f64) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let idx = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        // Saturating: a histogram sum is advisory.
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn render(&self, ingest_in_flight: usize, ingest_waiting: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP baithak_http_requests_total HTTP requests by status class."
        );
        let _ = writeln!(out, "# TYPE baithak_http_requests_total counter");
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "baithak_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP baithak_http_request_duration_seconds Request latency."
        );
        let _ = writeln!(
            out,
            "# TYPE baithak_http_request_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "baithak_http_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "baithak_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "baithak_http_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "baithak_http_request_duration_seconds_count {cumulative}"
        );
        let _ = writeln!(
            out,
            "# HELP baithak_photo_ingest_in_flight Photos admitted to ingest: decoding or queued for a decoder."
        );
        let _ = writeln!(out, "# TYPE baithak_photo_ingest_in_flight gauge");
        let _ = writeln!(out, "baithak_photo_ingest_in_flight {ingest_in_flight}");
        let _ = writeln!(
            out,
            "# HELP baithak_photo_ingest_waiting Photo uploads waiting for room in the ingest pool."
        );
        let _ = writeln!(out, "# TYPE baithak_photo_ingest_waiting gauge");
        let _ = writeln!(out, "baithak_photo_ingest_waiting {ingest_waiting}");
        out
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await;
    if let Some(state) = state {
        let status = match &res {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        state.metrics.record(status, start.elapsed().as_secs_f64());
    }
    res
}

/// Prometheus text exposition.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn serve(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(
            state
                .metrics
                .render(state.ingest.in_flight(), state.ingest.waiting()),
        )
}
