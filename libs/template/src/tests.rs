use super::*;
use std::time::Duration;

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
    assert_eq!(transform.env["QUARANTINE_PREFIX"], "quarantine/");
    assert_eq!(transform.env["MAX_RECEIVE_COUNT"], "5");
    assert_eq!(transform.env["TRANSFORM_OPS"], r#"[{"drop": ["HEX"]}]"#);
    let queue = route.queue("TransformQueue").expect("queue");
    assert_eq!(queue.visibility_timeout, Duration::from_secs(181));
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

mod lint_rules {
    use crate::lint::{Finding, lint};
    use std::collections::HashMap;
    use std::path::Path;

    fn shipped() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"))
            .expect("template")
    }

    fn findings(text: &str) -> Vec<Finding> {
        lint(text, "t.yaml", &HashMap::new()).expect("lintable")
    }

    fn broken(from: &str, to: &str) -> Vec<String> {
        broken_in("", from, to)
    }

    /// The findings once the first `from` after `resource`'s line (anywhere for "") becomes `to`.
    fn broken_in(resource: &str, from: &str, to: &str) -> Vec<String> {
        let text = shipped();
        let start = match resource {
            "" => 0,
            _ => text
                .find(&format!("  {resource}"))
                .unwrap_or_else(|| panic!("the shipped template no longer has {resource}")),
        };
        let (head, tail) = text.split_at(start);
        assert!(
            tail.contains(from),
            "the shipped template no longer contains {from:?} after {resource}"
        );
        findings(&format!("{head}{}", tail.replacen(from, to, 1)))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_unresolvable_setting_is_an_error_not_a_default() {
        let text = shipped().replacen(
            "VisibilityTimeout: !Ref QueueVisibilityTimeout",
            "VisibilityTimeout: !Ref NoSuchParameter",
            1,
        );
        let err = lint(&text, "t.yaml", &HashMap::new()).expect_err("cannot be read");
        assert_eq!(
            err.to_string(),
            "t.yaml: Resources.ExtractQueue.Properties.VisibilityTimeout: !Ref NoSuchParameter: no parameter or resource of that name"
        );
    }

    #[test]
    fn the_shipped_template_keeps_every_rule() {
        assert_eq!(findings(&shipped()), Vec::<Finding>::new());
    }

    #[test]
    fn a_stop_queue_without_a_dead_letter_queue() {
        assert_eq!(
            broken(
                "      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt TransformDeadLetterQueue.Arn\n        maxReceiveCount: !Ref MaxReceiveCount\n",
                "",
            ),
            [
                "TransformQueue: [dead-letter] read by TransformFunction but has no RedrivePolicy: a bus that keeps failing would be retried until it expires"
            ]
        );
    }

    #[test]
    fn a_visibility_timeout_shorter_than_six_function_timeouts() {
        let found = broken_in(
            "LoadQueue:",
            "VisibilityTimeout: !Ref QueueVisibilityTimeout",
            "VisibilityTimeout: 100",
        );
        assert_eq!(
            found,
            [
                "LoadQueue: [visibility-timeout] visibility timeout 100 s is less than 6 x LoadFunction timeout 30 s + batching window 1 s = 181 s"
            ]
        );
    }

    #[test]
    fn parameter_overrides_are_checked_against_the_six_timeouts_rule() {
        let with = |pairs: &[(&str, &str)]| -> Vec<String> {
            let parameters = pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            lint(&shipped(), "t.yaml", &parameters)
                .expect("readable")
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        // The deploy proof's short timeouts keep the rule.
        assert_eq!(
            with(&[("StopTimeout", "3"), ("QueueVisibilityTimeout", "19")]),
            Vec::<String>::new()
        );
        // One second less is enough for extract (no batching window), not for the others.
        assert_eq!(
            with(&[("StopTimeout", "3"), ("QueueVisibilityTimeout", "18")]),
            [
                "LoadQueue: [visibility-timeout] visibility timeout 18 s is less than 6 x LoadFunction timeout 3 s + batching window 1 s = 19 s",
                "TransformQueue: [visibility-timeout] visibility timeout 18 s is less than 6 x TransformFunction timeout 3 s + batching window 1 s = 19 s",
            ]
        );
    }

    #[test]
    fn an_sqs_trigger_without_partial_batch_responses() {
        assert_eq!(
            broken(
                "            MaximumBatchingWindowInSeconds: 0\n            FunctionResponseTypes:\n              - ReportBatchItemFailures\n",
                "            MaximumBatchingWindowInSeconds: 0\n",
            ),
            [
                "ExtractFunction: [partial-batch] SQS event Bus lacks FunctionResponseTypes: [ReportBatchItemFailures]; one bad bus would fail its whole batch"
            ]
        );
    }

    #[test]
    fn a_next_queue_the_function_may_not_send_to() {
        assert_eq!(
            broken("                - !GetAtt LoadQueue.Arn\n", ""),
            [
                "TransformFunction: [send-permission] NEXT_QUEUE_URL is LoadQueue, but no policy of TransformFunction allows sqs:SendMessage to it"
            ]
        );
    }

    #[test]
    fn a_route_that_loops() {
        let found = broken(
            "          STOP_NAME: load\n",
            "          STOP_NAME: load\n          NEXT_QUEUE_URL: !Ref ExtractQueue\n",
        );
        assert!(
            found.contains(&"LoadFunction: [no-cycle] Resources.LoadFunction.Properties.Environment.Variables.NEXT_QUEUE_URL: the route loops back to ExtractFunction".to_owned()),
            "{found:?}"
        );
    }

    #[test]
    fn a_dead_letter_queue_that_forgets_sooner_than_its_source() {
        let found = broken_in(
            "ExtractDeadLetterQueue:",
            "MessageRetentionPeriod: 1209600",
            "MessageRetentionPeriod: 345600",
        );
        assert_eq!(
            found,
            [
                "ExtractDeadLetterQueue: [dead-letter-retention] keeps messages 345600 s, not longer than its source ExtractQueue (345600 s): a dead letter could expire before anyone reads it"
            ]
        );
    }

    #[test]
    fn a_max_receive_count_that_disagrees_with_the_redrive_policy() {
        assert_eq!(
            broken(
                "          STOP_NAME: transform\n",
                "          STOP_NAME: transform\n          MAX_RECEIVE_COUNT: \"2\"\n"
            ),
            [
                "TransformFunction: [max-receive-count] MAX_RECEIVE_COUNT is 2 but TransformQueue redrives after 5 receives: the stop would not dead-letter with its reason"
            ]
        );
    }

    #[test]
    fn a_queue_url_that_is_not_the_queue_the_stop_reads() {
        assert_eq!(
            broken(
                "          QUEUE_URL: !Ref TransformQueue\n",
                "          QUEUE_URL: !Ref LoadQueue\n"
            ),
            [
                "TransformFunction: [queue-url] QUEUE_URL is LoadQueue but TransformFunction reads TransformQueue: buses could not be handed back or backed off"
            ]
        );
    }

    #[test]
    fn a_template_that_still_sets_the_quarantine_queue_is_told_what_replaced_it() {
        assert_eq!(
            broken_in(
                "TransformFunction",
                "          QUEUE_URL: !Ref TransformQueue\n",
                "          QUEUE_URL: !Ref TransformQueue\n          QUARANTINE_QUEUE_URL: !Ref TransformQueue\n"
            ),
            [
                "TransformFunction: [quarantine] QUARANTINE_QUEUE_URL is not read any more: rejected passengers are written to the data bucket under QUARANTINE_PREFIX (quarantine/); remove the variable and its queue, and allow s3:PutObject on the prefix"
            ]
        );
    }
}

mod lanes {
    use super::*;
    use crate::lint::lint;

    fn fan_out() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/lanes/template.yaml"),
        )
        .expect("the lanes sample")
    }

    fn findings(text: &str) -> Vec<String> {
        lint(text, "t.yaml", &HashMap::new())
            .expect("lintable")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_fan_out_rides_in_order_with_next_before_the_named_lanes_and_lints_clean() {
        let route = parse_route(&fan_out(), "t.yaml", &HashMap::new()).expect("a route");
        let stops: Vec<(&str, Vec<(String, &str)>)> = route
            .stops
            .iter()
            .map(|s| (s.name.as_str(), s.lanes()))
            .collect();
        assert_eq!(
            stops,
            [
                ("depot", vec![("next".to_owned(), "ExtractQueue")]),
                ("extract", vec![("next".to_owned(), "TransformQueue")]),
                (
                    "transform",
                    vec![
                        ("next".to_owned(), "LoadQueue"),
                        ("audit".to_owned(), "AuditQueue")
                    ]
                ),
                ("load", vec![]),
                ("audit", vec![]),
            ]
        );
        assert_eq!(findings(&fan_out()), Vec::<String>::new());
    }

    #[test]
    fn a_lane_without_a_consumer_is_a_finding_at_its_variable() {
        let text = fan_out().replacen(
            "Queue: !GetAtt AuditQueue.Arn",
            "Queue: !GetAtt LoadQueue.Arn",
            1,
        );
        let found = findings(&text);
        assert!(
            found.contains(&"TransformFunction: [route] Resources.TransformFunction.Properties.Environment.Variables.LANE_AUDIT_QUEUE_URL: no function reads AuditQueue (lane audit)".to_owned()),
            "{found:?}"
        );
    }

    #[test]
    fn a_lane_to_something_that_is_not_a_queue_or_without_permission_is_a_finding() {
        let text = fan_out().replacen(
            "LANE_AUDIT_QUEUE_URL: !Ref AuditQueue",
            "LANE_AUDIT_QUEUE_URL: !Ref AuditLogGroup",
            1,
        );
        let found = findings(&text);
        assert!(
            found.contains(&"TransformFunction: [lane] LANE_AUDIT_QUEUE_URL is AuditLogGroup, which is not an AWS::SQS::Queue of this template".to_owned()),
            "{found:?}"
        );
        let text = fan_out().replacen("                - !GetAtt AuditQueue.Arn\n", "", 1);
        assert_eq!(
            findings(&text),
            [
                "TransformFunction: [send-permission] LANE_AUDIT_QUEUE_URL is AuditQueue, but no policy of TransformFunction allows sqs:SendMessage to it"
            ]
        );
    }

    #[test]
    fn a_lane_that_loops_back_is_a_cycle() {
        let text = fan_out().replacen(
            "          STOP_NAME: audit\n",
            "          STOP_NAME: audit\n          LANE_AGAIN_QUEUE_URL: !Ref TransformQueue\n",
            1,
        );
        let found = findings(&text);
        assert!(
            found.contains(&"AuditFunction: [no-cycle] Resources.AuditFunction.Properties.Environment.Variables.LANE_AGAIN_QUEUE_URL: the route loops back to TransformFunction".to_owned()),
            "{found:?}"
        );
    }

    #[test]
    fn two_lanes_may_join_at_one_stop() {
        // transform's audit lane and load's new next lane both lead to audit.
        let text = fan_out().replacen(
            "          STOP_NAME: load\n",
            "          STOP_NAME: load\n          NEXT_QUEUE_URL: !Ref AuditQueue\n",
            1,
        );
        let route = parse_route(&text, "t.yaml", &HashMap::new()).expect("a route");
        let names: Vec<&str> = route.stops.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["depot", "extract", "transform", "load", "audit"]);
    }
}

mod adding_a_stop {
    use super::*;
    use crate::add_stop::{NewStop, add_stop};

    fn shipped_text() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        std::fs::read_to_string(path).expect("template")
    }

    fn enrich(after: &str) -> NewStop {
        NewStop {
            name: "enrich".into(),
            kind: "enrich".into(),
            after: after.into(),
            binary: None,
            settings: vec![("ENRICH_URL".into(), "http://127.0.0.1:8080/colors/".into())],
            ..NewStop::default()
        }
    }

    fn order(text: &str, parameters: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        let parameters = parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_route(text, "t.yaml", &parameters)
            .expect("a route")
            .stops
            .iter()
            .map(|s| (s.name.clone(), s.env.get("NEXT_QUEUE_URL").cloned()))
            .collect()
    }

    #[test]
    fn a_stop_added_in_the_middle_is_wired_between_its_neighbours() {
        let text = add_stop(&shipped_text(), "t.yaml", &enrich("transform")).expect("added");
        let next = |q: &str| Some(q.to_owned());
        assert_eq!(
            order(&text, &[]),
            [
                ("depot".into(), next("ExtractQueue")),
                ("extract".into(), next("TransformQueue")),
                ("transform".into(), next("EnrichQueue")),
                ("enrich".into(), next("LoadQueue")),
                ("load".into(), None),
            ]
        );
        let route = parse_route(&text, "t.yaml", &HashMap::new()).expect("route");
        let stop = &route.stops[3];
        assert_eq!(stop.kind, "enrich");
        assert_eq!(stop.env["ENRICH_URL"], "http://127.0.0.1:8080/colors/");
        assert_eq!(stop.env["DEAD_LETTER_QUEUE_URL"], "EnrichDeadLetterQueue");
        assert_eq!(stop.queue.as_deref(), Some("EnrichQueue"));
        // Its setting is a parameter: a ride or a deploy can change it.
        let changed = parse_route(
            &text,
            "t.yaml",
            &HashMap::from([("EnrichUrl".to_owned(), "http://elsewhere/".to_owned())]),
        )
        .expect("route");
        assert_eq!(changed.stops[3].env["ENRICH_URL"], "http://elsewhere/");
        assert!(
            lint::lint(&text, "t.yaml", &HashMap::new())
                .expect("lint")
                .is_empty()
        );
        // The rest of the template is untouched, comments included: take out what was added
        // and point transform back at the load queue, and the shipped template is back.
        let cut = |text: &str, from: &str, to: &str| -> String {
            let start = text.find(from).expect("added text");
            let end = start + text[start..].find(to).expect("its end");
            format!("{}{}", &text[..start], &text[end..])
        };
        let mut restored = cut(&text, "  EnrichUrl:\n", "\nConditions:");
        restored = cut(&restored, "  # --- enrich", "\nOutputs:");
        restored.truncate(restored.find("  EnrichQueueUrl:").expect("its outputs"));
        let restored = restored.replace("EnrichQueue", "LoadQueue");
        assert_eq!(restored, shipped_text());
    }

    #[test]
    fn a_stop_added_after_the_last_one_extends_the_route() {
        let mut audit = enrich("load");
        audit.name = "audit".into();
        audit.kind = "load".into();
        audit.binary = Some("busline-stops".into());
        audit.settings = vec![("OUTPUT_PREFIX".into(), "audit/".into())];
        let text = add_stop(&shipped_text(), "t.yaml", &audit).expect("added");
        let stops = order(&text, &[]);
        assert_eq!(stops[3], ("load".to_owned(), Some("AuditQueue".to_owned())));
        assert_eq!(stops[4], ("audit".to_owned(), None));
        let route = parse_route(&text, "t.yaml", &HashMap::new()).expect("route");
        // A binary holding several kinds: the function says which one with STOP_KIND.
        assert_eq!(route.stops[4].kind, "load");
        assert_eq!(route.stops[4].env["STOP_KIND"], "load");
        assert_eq!(route.stops[4].env["OUTPUT_PREFIX"], "audit/");
        assert!(text.contains("  AuditOutputPrefix:\n    Type: String\n    Default: audit/\n"));
        assert!(
            lint::lint(&text, "t.yaml", &HashMap::new())
                .expect("lint")
                .is_empty()
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let refused = |stop: NewStop| {
            add_stop(&shipped_text(), "t.yaml", &stop)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(enrich("nowhere")),
            "t.yaml: Resources: no stop named nowhere to add after"
        );
        let mut taken = enrich("transform");
        taken.name = "load".into();
        assert_eq!(
            refused(taken),
            "t.yaml: Resources.LoadQueue: already exists"
        );
        let mut odd = enrich("transform");
        odd.name = "en rich".into();
        assert_eq!(
            refused(odd),
            "t.yaml: Resources: stop name \"en rich\" must be letters, digits and '-'"
        );
    }
}
