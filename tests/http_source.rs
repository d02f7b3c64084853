//! The http-source stop against a real HTTP server on loopback (samples/http-api): every page
//! of a paginated API is read, by page number, cursor or `Link` header, with a 429 and its
//! `Retry-After` on the way, and every record arrives exactly once; a page that is not JSON or
//! lacks its records dead-letters the ticket with the URL and the reason.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use busline_cli::ride::ride;
use busline_tests::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests seen, by path and query.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn record(&self, what: String) -> usize {
        let mut seen = self.0.lock().expect("lock");
        seen.push(what.clone());
        seen.iter().filter(|s| **s == what).count()
    }

    fn count(&self, what: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| *s == what)
            .count()
    }
}

const PER_PAGE: u64 = 10;
const RECORDS: u64 = 30;

/// The records of page `page` (from 1): ids (page-1)*10+1 .. page*10, none past 30.
fn page_records(page: u64) -> Vec<Value> {
    let first = (page - 1) * PER_PAGE + 1;
    (first..first + PER_PAGE)
        .filter(|id| *id <= RECORDS)
        .map(|id| json!({"id": id, "name": format!("color-{id}"), "price": format!("{id}.50").parse::<f64>().ok()}))
        .collect()
}

fn number(query: &HashMap<String, String>, name: &str) -> u64 {
    query.get(name).and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// `?page=N`; page 2 answers 429 with `Retry-After: 1` the first time.
async fn by_page(
    State(seen): State<Seen>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page = number(&query, "page");
    if seen.record(format!("page {page}")) == 1 && page == 2 {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("1"));
        return (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response();
    }
    json_page(json!({"data": page_records(page), "page": page}))
}

/// `?cursor=c2`: the next cursor in the page, none after the last.
async fn by_cursor(
    State(seen): State<Seen>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page: u64 = query
        .get("cursor")
        .and_then(|c| c.strip_prefix('c'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    seen.record(format!("cursor {page}"));
    let next = (page * PER_PAGE < RECORDS).then(|| format!("c{}", page + 1));
    json_page(json!({"data": page_records(page), "next": next}))
}

/// `Link: <...>; rel="next"` until the last page.
async fn by_link(
    State(seen): State<Seen>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page = number(&query, "p");
    seen.record(format!("link {page}"));
    let mut headers = HeaderMap::new();
    if page * PER_PAGE < RECORDS {
        let link = format!("</linked?p={}>; rel=\"next\"", page + 1);
        headers.insert("link", HeaderValue::from_str(&link).expect("header"));
    }
    (headers, json_page(json!(page_records(page)))).into_response()
}

/// A JSON answer (axum here is built without its JSON extractor, as the driver needs it).
fn json_page(body: Value) -> Response {
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn not_json() -> Response {
    ([("content-type", "text/html")], "<html>maintenance</html>").into_response()
}

async fn no_records() -> Response {
    json_page(json!({"items": []}))
}

/// The API on a free loopback port; its base URL and what it saw.
async fn api() -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/colors", axum::routing::get(by_page))
        .route("/cursor", axum::routing::get(by_cursor))
        .route("/linked", axum::routing::get(by_link))
        .route("/broken", axum::routing::get(not_json))
        .route("/nodata", axum::routing::get(no_records))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

/// Rides samples/http-api at `url` with `parameters`; the report and the output records.
async fn ride_api(
    url: &str,
    parameters: &[(&str, &str)],
) -> (busline_cli::report::RideReport, Vec<Value>) {
    let mut all: Vec<(String, String)> = vec![
        ("ApiUrl".into(), url.into()),
        ("ApiRateLimit".into(), "100".into()),
        ("TransformOps".into(), r#"[{"require": ["id"]}]"#.into()),
    ];
    all.extend(
        parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let route = busline_template::read_route(
        &workspace_root().join("samples/http-api/template.yaml"),
        &all.into_iter().collect(),
    )
    .expect("the http-api route");
    let input = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, input.path(), out.path());
    options.trip_id = Some("api".into());
    let report = ride(options, |_| {}).await.expect("ride");
    assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
    let output = out.path().join("output/trip=api");
    let records = if output.is_dir() {
        ndjson_records(&output)
    } else {
        Vec::new()
    };
    (report, records)
}

fn ids(records: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = records.iter().filter_map(|r| r["id"].as_u64()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_read_with_a_429_on_the_way_and_every_record_arrives_once() {
    let (base, seen) = api().await;
    let started = Instant::now();
    let (report, records) = ride_api(&format!("{base}/colors"), &[("Pagination", "page")]).await;
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    assert_eq!(ids(&records), (1..=RECORDS).collect::<Vec<_>>());
    assert_eq!(seen.count("page 2"), 2, "page 2 asked again after its 429");
    assert_eq!(seen.count("page 4"), 1, "the empty page ends the paging");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was waited"
    );
    let record = records
        .iter()
        .find(|r| r["id"] == json!(12))
        .expect("record 12");
    assert_eq!(
        record.to_string(),
        r#"{"id":12,"name":"color-12","price":12.5}"#
    );
}

#[tokio::test]
async fn cursor_and_link_pagination_read_every_page_once() {
    let (base, seen) = api().await;
    let (_, by_cursor) = ride_api(
        &format!("{base}/cursor"),
        &[("Pagination", "cursor"), ("CursorPointer", "/next")],
    )
    .await;
    assert_eq!(ids(&by_cursor), (1..=RECORDS).collect::<Vec<_>>());
    assert_eq!((seen.count("cursor 1"), seen.count("cursor 3")), (1, 1));
    let (_, by_link) = ride_api(
        &format!("{base}/linked"),
        &[("Pagination", "link"), ("RecordsPointer", "")],
    )
    .await;
    assert_eq!(ids(&by_link), (1..=RECORDS).collect::<Vec<_>>());
    assert_eq!(seen.count("link 3"), 1);
}

#[tokio::test]
async fn a_page_that_is_not_json_or_lacks_its_records_dead_letters_the_ticket_with_url_and_reason()
{
    let (base, _) = api().await;
    for (path, reason) in [
        (
            "broken",
            "the page is not JSON: expected value at line 1 column 1",
        ),
        ("nodata", "the page has nothing at \"/data\""),
    ] {
        let (report, records) =
            ride_api(&format!("{base}/{path}"), &[("Pagination", "page")]).await;
        assert!(records.is_empty());
        assert_eq!(report.dead_letters.len(), 1, "{path}");
        let letter = &report.dead_letters[0];
        assert_eq!(letter.stop, "extract");
        assert_eq!(letter.class.as_deref(), Some("permanent"));
        assert_eq!(letter.reason, format!("GET {base}/{path}?page=1: {reason}"));
    }
}
