//! The dynamodb-sink stop against MiniStack's DynamoDB (samples/postgres-dynamodb: a
//! PostgreSQL query's rows to a table): a trip ridden twice leaves exactly one item per row
//! with its values exact (numbers' digits kept); an item over 400 KB and a number DynamoDB
//! would round are quarantined alone with their reasons; a key field that is missing or of
//! the wrong type is quarantined, and of two passengers with one key the last is kept; a
//! missing table or a key the settings cannot fill stops init with the table's name. The trip
//! ledger's DynamoDB table and completion events are in `ledger_on_dynamodb.rs`.

mod ledger_on_dynamodb;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use busline_cli::ride::ride;
use busline_core::{Extensions, InitError};
use busline_dynamodb_sink::{DynamoSink, SinkConfig};
use busline_template::add_stop::{NewStop, add_stop};
use busline_tests::cloud::{Cloud, cloud, unique};
use busline_tests::postgres::{connect, database_url, table};
use busline_tests::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Item = HashMap<String, AttributeValue>;

async fn dynamodb() -> (Cloud, aws_sdk_dynamodb::Client) {
    let cloud = cloud("ministack").await;
    let client = aws_sdk_dynamodb::Client::new(&cloud.config);
    (cloud, client)
}

/// Creates table `name` keyed by `key` (attribute, type; partition key first).
async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &[(&str, ScalarAttributeType)],
) {
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (position, (attribute, kind)) in key.iter().enumerate() {
        let role = if position == 0 {
            KeyType::Hash
        } else {
            KeyType::Range
        };
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attribute)
                    .attribute_type(kind.clone())
                    .build()
                    .expect("definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*attribute)
                    .key_type(role)
                    .build()
                    .expect("key"),
            );
    }
    create.send().await.expect("table created");
}

/// Every item of `table`, page by page.
async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("scanned")
}

fn text(item: &Item, name: &str) -> String {
    match &item[name] {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::Null(_) => "NULL".into(),
        other => panic!("{name}: unexpected {other:?}"),
    }
}

/// A number as DynamoDB gives it back: no trailing zeros after the point.
fn normal(number: &str) -> String {
    match number.contains('.') {
        true => number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
        false => number.to_owned(),
    }
}

const ROWS: i64 = 2_000;

/// Orders 1..=ROWS with amounts beyond a float's digits, some NULL notes, order 7's note over
/// 400 KB and order 11 with a 41-digit number.
async fn orders() -> String {
    let name = table(
        "orders",
        "id bigint PRIMARY KEY, customer text, amount numeric(20,2), placed timestamptz, \
         note text, big numeric",
    )
    .await;
    connect()
        .await
        .batch_execute(&format!(
            "INSERT INTO {name} SELECT i, 'customer-' || (i % 97), \
             (12345678901234567 + i * 1.25)::numeric(20,2), \
             timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', \
             CASE WHEN i = 7 THEN repeat('x', 420000) WHEN i % 10 = 0 THEN NULL ELSE 'n' || i END, \
             CASE WHEN i = 11 THEN 12345678901234567890123456789012345678901 END \
             FROM generate_series(1, {ROWS}) i"
        ))
        .await
        .expect("rows inserted");
    name
}

/// Rides samples/postgres-dynamodb over PostgreSQL table `orders` into `route`'s table.
async fn ride_into(cloud: &Cloud, orders: &str, route: &str) -> busline_cli::report::RideReport {
    let url = database_url();
    let query = format!("SELECT * FROM {orders}");
    let parameters = [
        ("RouteName", route),
        ("SourceDatabaseUrl", url.as_str()),
        ("SourceQuery", query.as_str()),
        ("SourceKey", "id"),
        ("RangeRows", "700"),
        (
            "TransformOps",
            r#"[{"route": {"when": [], "default": "items"}}]"#,
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let route = busline_template::read_route(
        &workspace_root().join("samples/postgres-dynamodb/template.yaml"),
        &parameters,
    )
    .expect("the postgres-dynamodb route");
    let input = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = ride_options(route, input.path(), out.path());
    options.trip_id = Some("orders".into());
    let mut extensions = Extensions::default();
    extensions.insert(cloud.config.clone());
    options.extensions = extensions;
    let report = ride(options, |_| {}).await.expect("ride");
    assert!(report.stops.iter().all(|s| s.adds_up), "{}", report.table());
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    report
}

#[tokio::test]
async fn postgres_rows_ridden_twice_leave_one_exact_item_each_and_bad_items_are_quarantined() {
    let (cloud, client) = dynamodb().await;
    let orders = orders().await;
    let route = unique("pg-ddb");
    let table = format!("{route}-items");
    create_table(&client, &table, &[("busline_id", ScalarAttributeType::S)]).await;

    let mut first_items = Vec::new();
    for ride_number in 0..2 {
        let report = ride_into(&cloud, &orders, &route).await;
        let items = report
            .stops
            .iter()
            .find(|s| s.stop == "items")
            .expect("stop");
        assert_eq!(
            items.counts.dropped_off,
            ROWS as u64 - 2,
            "{}",
            report.table()
        );
        let reasons: Vec<String> = report
            .quarantined
            .iter()
            .map(|q| q.rejection.reason.clone())
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons.iter().any(
                |r| r.contains("bytes; DynamoDB stores items of at most 409600 bytes (400 KB)")
            ),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains(
                "field `big`: number 12345678901234567890123456789012345678901 has 41 significant digits; DynamoDB keeps 38"
            )),
            "{reasons:?}"
        );
        let mut scanned = scan(&client, &table).await;
        scanned.sort_by_key(|item| text(item, "id").parse::<i64>().expect("id"));
        assert_eq!(
            scanned.len(),
            ROWS as usize - 2,
            "one item per good row, ride {ride_number}"
        );
        if ride_number == 0 {
            first_items = scanned;
        } else {
            assert_eq!(scanned, first_items, "the second ride changed nothing");
        }
    }

    // Each item as the database has the row: amounts to the cent past a float's digits.
    let db = connect().await;
    let rows = db
        .query(
            &format!(
                "SELECT id::text AS id_text, customer, amount::text, to_json(placed)#>>'{{}}', coalesce(note, 'NULL') \
                 FROM {orders} WHERE id NOT IN (7, 11) ORDER BY id"
            ),
            &[],
        )
        .await
        .expect("rows");
    for (row, item) in rows.iter().zip(&first_items) {
        let expected: Vec<String> = (0..5).map(|i| row.get::<_, String>(i)).collect();
        let actual = [
            text(item, "id"),
            text(item, "customer"),
            normal(&text(item, "amount")),
            text(item, "placed"),
            text(item, "note"),
        ];
        assert_eq!(
            actual,
            [
                expected[0].clone(),
                expected[1].clone(),
                normal(&expected[2]),
                expected[3].clone(),
                expected[4].clone()
            ]
        );
        assert_eq!(item["big"], AttributeValue::Null(true));
    }
}

fn vars(table: &str, key_fields: &str) -> HashMap<String, String> {
    [("TABLE_NAME", table), ("KEY_FIELDS", key_fields)]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn sink(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key_fields: &str,
) -> Result<DynamoSink, InitError> {
    let config = SinkConfig::from_vars(&vars(table, key_fields)).expect("settings");
    DynamoSink::connect(config, client.clone()).await
}

#[tokio::test]
async fn declared_key_fields_key_items_and_a_bad_key_quarantines_only_its_passenger() {
    let (_cloud, client) = dynamodb().await;
    let table = unique("events");
    create_table(
        &client,
        &table,
        &[
            ("device", ScalarAttributeType::S),
            ("at", ScalarAttributeType::N),
        ],
    )
    .await;
    let sink = sink(&client, &table, "device,at").await.expect("init");
    let h = Harness::new();
    send(
        h.queue("in"),
        &bus_body(
            "b1",
            &[
                json!({"device": "d1", "at": 1, "reading": 10}),
                json!({"device": "d1", "at": 2, "reading": 20}),
                json!({"device": "d1", "at": "three", "reading": 30}),
                json!({"device": "d2", "reading": 40}),
                json!({"device": "d1", "at": 1, "reading": 11}),
            ],
        ),
    );
    let processor = h
        .processor(Arc::new(sink), &[], Arc::new(h.queues.clone()))
        .await;
    h.process_all_ok(&processor, 10).await;

    let reasons: BTreeMap<String, String> = h
        .quarantined()
        .await
        .into_iter()
        .map(|line| (line.rejection.id, line.rejection.reason))
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            (
                "b1-2".to_owned(),
                "passenger b1-2: key field `at` must be a number (the table's type N)".to_owned()
            ),
            (
                "b1-3".to_owned(),
                "passenger b1-3: key field `at` is missing".to_owned()
            ),
        ])
    );
    let mut readings: Vec<(String, String, String)> = scan(&client, &table)
        .await
        .iter()
        .map(|item| {
            (
                text(item, "device"),
                text(item, "at"),
                text(item, "reading"),
            )
        })
        .collect();
    readings.sort();
    assert_eq!(
        readings,
        [
            ("d1".into(), "1".into(), "11".into()),
            ("d1".into(), "2".into(), "20".into())
        ],
        "one item per key, the last passenger's"
    );
    let counts = h.metrics.0.lock().expect("lock")[0].counts.clone();
    assert_eq!((counts.rejected, counts.dropped_off), (2, 3));
}

#[tokio::test]
async fn init_names_a_missing_table_and_a_key_the_settings_cannot_fill() {
    let (_cloud, client) = dynamodb().await;
    let missing = unique("nowhere");
    let err = sink(&client, &missing, "").await.err().expect("no table");
    assert_eq!(
        busline_core::error::chain(&err),
        format!("DynamoDB table {missing}: the table does not exist")
    );
    let sorted = unique("sorted");
    create_table(
        &client,
        &sorted,
        &[
            ("pk", ScalarAttributeType::S),
            ("sk", ScalarAttributeType::S),
        ],
    )
    .await;
    let err = sink(&client, &sorted, "")
        .await
        .err()
        .expect("a sort key needs fields");
    assert!(
        busline_core::error::chain(&err)
            .contains("the table's key is pk,sk (with a sort key): set KEY_FIELDS=pk,sk"),
        "{err}"
    );
    let err = sink(&client, &sorted, "pk")
        .await
        .err()
        .expect("wrong fields");
    assert!(
        busline_core::error::chain(&err)
            .contains("KEY_FIELDS=pk does not match the table's key pk,sk"),
        "{err}"
    );
}

#[test]
fn the_postgres_dynamodb_sample_is_the_postgres_source_route_plus_one_add_stop() {
    let base =
        std::fs::read_to_string(workspace_root().join("samples/postgres-source/template.yaml"))
            .expect("template");
    let stop = NewStop {
        name: "items".into(),
        kind: "dynamodb-sink".into(),
        after: "transform".into(),
        lane: Some("items".into()),
        table_key: vec![("busline_id".into(), "S".into())],
        ..NewStop::default()
    };
    let added = add_stop(&base, "template.yaml", &stop).expect("added");
    let committed =
        std::fs::read_to_string(workspace_root().join("samples/postgres-dynamodb/template.yaml"))
            .expect("sample");
    assert!(
        added == committed,
        "samples/postgres-dynamodb/template.yaml is not what its README's bus add-stop writes: run it again"
    );
}

#[tokio::test]
async fn a_ride_that_offers_no_aws_configuration_says_when_it_would() {
    let route = busline_template::read_route(
        &workspace_root().join("samples/postgres-dynamodb/template.yaml"),
        &[("SourceDatabaseUrl".to_owned(), database_url())]
            .into_iter()
            .collect(),
    )
    .expect("the postgres-dynamodb route");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ride(ride_options(route, dir.path(), dir.path()), |_| {})
        .await
        .expect_err("the sink cannot be built");
    assert_eq!(
        busline_core::error::chain(&err),
        "stop items (ItemsFunction); bus ride offers the AWS configuration and a secret store \
         (Secrets Manager) only when AWS_REGION or AWS_PROFILE is set, with AWS_ENDPOINT_URL for an emulator: \
         stop kind dynamodb-sink needs aws_types::sdk_config::SdkConfig, which this host does not provide"
    );
}
