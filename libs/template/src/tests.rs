use super::*;

fn shipped() -> Route {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    read_route(&path, &HashMap::new()).expect("the shipped template is a route")
}

fn route_error(text: &str) -> String {
    parse_route(text, "t.yaml", &HashMap::new())
        .expect_err("should fail")
        .to_string()
}

#[test]
fn shipped_template_gives_the_colors_route() {
    let route = shipped();
    assert_eq!(route.name, "colors");
    let stops: Vec<(&str, &str, Option<&str>)> = route
        .stops
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str(), s.queue.as_deref()))
        .collect();
    assert_eq!(
        stops,
        vec![
            ("depot", "depot", None),
            ("extract", "extract", Some("ExtractQueue")),
            ("transform", "transform", Some("TransformQueue")),
            ("load", "load", Some("LoadQueue")),
        ]
    );
    let transform = &route.stops[2];
    assert_eq!(transform.batch_size, 10);
    assert_eq!(transform.env["NEXT_QUEUE_URL"], "LoadQueue");
    assert_eq!(transform.env["QUARANTINE_QUEUE_URL"], "QuarantineQueue");
    assert_eq!(transform.env["MAX_RECEIVE_COUNT"], "5");
    assert_eq!(transform.env["TRANSFORM_OPS"], r#"[{"drop": ["HEX"]}]"#);
    let queue = route.queue("TransformQueue").expect("queue");
    assert_eq!(queue.visibility_timeout, Duration::from_secs(180));
    assert_eq!(
        queue.dead_letter_queue.as_deref(),
        Some("TransformDeadLetterQueue")
    );
    assert_eq!(queue.max_receive_count, Some(5));
}

#[test]
fn parameter_overrides_flow_into_queues_and_env() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let overrides = HashMap::from([("MaxReceiveCount".to_owned(), "3".to_owned())]);
    let route = read_route(&path, &overrides).expect("route");
    assert_eq!(
        route.queue("LoadQueue").and_then(|q| q.max_receive_count),
        Some(3)
    );
    assert_eq!(route.stops[3].env["MAX_RECEIVE_COUNT"], "3");
    let unknown = HashMap::from([("Nope".to_owned(), "1".to_owned())]);
    assert_eq!(
        read_route(&path, &unknown)
            .expect_err("unknown parameter")
            .to_string(),
        format!(
            "{}: Parameters.Nope: is overridden but not declared",
            path.display()
        )
    );
}

const TWO_STOPS: &str = r#"
Resources:
  Q:
    Type: AWS::SQS::Queue
  Depot:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: depot}}
    Properties:
      Environment: {Variables: {NEXT_QUEUE_URL: {Ref: Q}}}
  Load:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/load/
      Events:
        E: {Type: SQS, Properties: {Queue: {"Fn::GetAtt": [Q, Arn]}}}
"#;

#[test]
fn long_form_intrinsics_and_code_uri_kinds() {
    let route = parse_route(TWO_STOPS, "t.yaml", &HashMap::new()).expect("route");
    assert_eq!(route.stops[1].kind, "load");
    assert_eq!(route.stops[1].queue.as_deref(), Some("Q"));
    assert_eq!(route.stops[1].name, "Load");
}

#[test]
fn errors_name_file_and_place() {
    assert_eq!(
        route_error("Resources: [1"),
        "t.yaml:2:1: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 12"
    );
    assert_eq!(
        route_error(&TWO_STOPS.replace("{Ref: Q}", "{Ref: Missing}")),
        "t.yaml: Resources.Depot.Properties.Environment.Variables.NEXT_QUEUE_URL: !Ref Missing: no parameter or resource of that name"
    );
    assert_eq!(
        route_error(&TWO_STOPS.replace("Events:", "Nothing:")),
        "t.yaml: Resources: more than one function has no SQS event (Depot, Load); a route has one depot"
    );
}

#[test]
fn loops_are_refused() {
    let looped = TWO_STOPS.replace(
        "CodeUri: functions/load/",
        "CodeUri: functions/load/\n      Environment: {Variables: {NEXT_QUEUE_URL: !Ref Q}}",
    );
    assert_eq!(
        route_error(&looped),
        "t.yaml: Resources.Load.Properties.Environment.Variables.NEXT_QUEUE_URL: the route loops back to Load"
    );
}
