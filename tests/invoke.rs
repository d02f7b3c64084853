//! `bus ride --invoke`: stops reached through the Lambda Invoke API of `cargo lambda watch`,
//! on the ride's embedded queues and folder bucket, served to them over SQS and S3.

use busline_cli::ride::{InvokeOptions, ride};
use busline_core::route::Route;
use busline_tests::colors_api::ColorsApi;
use busline_tests::watch::{Watch, free_port, start_watch};
use busline_tests::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

/// Every object under `dir`, as (path relative to it, content).
fn objects(dir: &Path) -> Vec<(String, String)> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let key = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            (key, std::fs::read_to_string(&path).expect("readable"))
        })
        .collect()
}

/// `cargo lambda watch` in `dir` running `stop` of `route` against a driver at `serve`, with the
/// variables `bus env` prints, written to an env file.
fn watch_stop(
    dir: &Path,
    extra: &[&str],
    route: &Route,
    stop: &str,
    serve: SocketAddr,
) -> (Watch, tempfile::NamedTempFile) {
    let spec = route
        .stops
        .iter()
        .find(|s| s.name == stop)
        .expect("the stop");
    let env = busline_driver::function_env(route, spec, &format!("http://{serve}"));
    let file = tempfile::NamedTempFile::new().expect("env file");
    std::fs::write(file.path(), busline_driver::env_file(&env)).expect("write env file");
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.push("--env-file".into());
    args.push(file.path().display().to_string());
    (start_watch(dir, &args), file)
}

fn serve_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_under_cargo_lambda_watch_writes_what_the_in_process_ride_writes() {
    let route = shipped_route(&[]);
    let input = workspace_root().join("samples/colors");
    let in_process = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route.clone(), &input, in_process.path());
    options.trip_id = Some("invoke-1".into());
    ride(options, |_| {}).await.expect("in-process ride");

    let serve = serve_address();
    let (watch, _env) = tokio::task::spawn_blocking({
        let route = route.clone();
        move || {
            watch_stop(
                &workspace_root(),
                &["-p", "busline-transform"],
                &route,
                "transform",
                serve,
            )
        }
    })
    .await
    .expect("watch");
    let invoked = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, &input, invoked.path());
    options.trip_id = Some("invoke-1".into());
    options.invoke = InvokeOptions {
        stops: HashMap::from([("transform".to_owned(), watch.endpoint.clone())]),
        serve,
        ..InvokeOptions::default()
    };
    let report = ride(options, |_| {})
        .await
        .expect("ride with transform invoked");
    let logs = watch.output.lock().expect("lock").join("\n");
    assert!(
        report.dead_letters.is_empty(),
        "{:?}\n{logs}",
        report.dead_letters
    );
    let transform = &report.stops[2];
    assert!(transform.invoked);
    assert_eq!(
        (transform.counts.buses_in, transform.counts.passengers_in),
        (1, 30)
    );
    assert!(
        logs.contains("\"message\":\"bus handled\"") && logs.contains("\"forwarded\":30"),
        "the function handled the bus: {logs}"
    );
    let expected = objects(&in_process.path().join("output"));
    assert!(!expected.is_empty());
    assert_eq!(
        objects(&invoked.path().join("output")),
        expected,
        "same keys, same bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_this_bus_was_not_built_with_rides_through_the_invoke_api() {
    let api = ColorsApi::start(&[]);
    let example = workspace_root().join("examples/enrich");
    let parameters = [("EnrichUrl", api.url.as_str())];
    let route = busline_template::read_route(
        &example.join("template.yaml"),
        &parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .expect("the example's route");
    let registry = busline_builtin::registry();
    assert!(
        registry.get("enrich").is_err(),
        "the built-in registry has no enrich kind"
    );

    let serve = serve_address();
    let (watch, _env) = tokio::task::spawn_blocking({
        let route = route.clone();
        move || watch_stop(&example, &[], &route, "enrich", serve)
    })
    .await
    .expect("watch");
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, &workspace_root().join("samples/colors"), out.path());
    options.trip_id = Some("invoke-2".into());
    options.invoke = InvokeOptions {
        stops: HashMap::from([("enrich".to_owned(), watch.endpoint.clone())]),
        serve,
        ..InvokeOptions::default()
    };
    let report = ride(options, |_| {})
        .await
        .expect("ride with enrich invoked");
    let logs = watch.output.lock().expect("lock").join("\n");
    assert!(
        report.dead_letters.is_empty(),
        "{:?}\n{logs}",
        report.dead_letters
    );
    let mut output: Vec<String> = objects(&out.path().join("output/trip=invoke-2"))
        .into_iter()
        .flat_map(|(_, text)| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    output.sort();
    assert_eq!(output, enrich_expected_output());
    let reasons: Vec<&str> = report
        .quarantined
        .iter()
        .map(|q| q.rejection.reason.as_str())
        .collect();
    assert_eq!(reasons, enrich_expected_rejections(&api.url));
}
