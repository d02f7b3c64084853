//! `bus add-stop`: puts a new stop into a template's route in one step. It writes the stop's
//! queue, dead-letter queue, log group, function (least-privilege policies, SQS trigger with
//! partial batch responses), alarms and outputs, one template parameter per setting, and
//! rewires the stop before it: its `NEXT_QUEUE_URL` and its send policy now point at the new
//! queue, and the new stop forwards to where that stop used to.
//!
//! The template is edited as text, so its comments and layout stay as they are; the result is
//! read back as a route and linted before it is returned.

use crate::lint::lint;
use crate::read::read_resources;
use crate::{TemplateError, parse_route};
use busline_core::config::lane_variable;
use std::collections::HashMap;
use std::fmt::Write as _;

/// What to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStop {
    /// The stop's name (`STOP_NAME`), e.g. `enrich`; logical ids are its CamelCase (`Enrich…`).
    pub name: String,
    /// The stop kind it runs (a registered kind).
    pub kind: String,
    /// The stop (its name or its function's logical id) it comes after.
    pub after: String,
    /// The binary that holds the kind (`BuildProperties.Binary`); the kind when `None`. When
    /// they differ the function gets `STOP_KIND`.
    pub binary: Option<String>,
    /// The stop's own settings: each becomes a template parameter (the variable in CamelCase,
    /// after the stop's id unless it starts with it) with this default, so a deploy or
    /// `bus ride --parameter` can change it.
    pub settings: Vec<(String, String)>,
    /// A new lane of `after` that leads to the new stop (a branch: `after` keeps its other
    /// lanes and the new stop ends the branch), instead of putting the stop in `after`'s way.
    pub lane: Option<String>,
    /// Key prefixes of the data bucket the new stop writes (`s3:PutObject`), e.g. `audit/`.
    pub writes: Vec<String>,
    /// Key prefixes of the data bucket the new stop reads (`s3:GetObject`).
    pub reads: Vec<String>,
    /// The key of a DynamoDB table the new stop writes: attribute names with their types (`S`
    /// or `N`), the partition key first and at most a sort key after it. The template gains
    /// the table (on demand, encrypted, point-in-time recovery, named `<route>-<stop>`), the
    /// stop's `TABLE_NAME` names it, and its policy may describe the table and put items in
    /// it, nothing more. Empty: no table.
    pub table_key: Vec<(String, String)>,
    /// Secrets Manager secrets (names, or ARNs) the new stop may read
    /// (`secretsmanager:GetSecretValue`), such as its `DATABASE_SECRET`.
    pub secrets: Vec<String>,
}

/// Parameters the generated resources refer to; a template shaped like busline's has them.
const NEEDED_PARAMETERS: [&str; 6] = [
    "RouteName",
    "MaxReceiveCount",
    "QueueVisibilityTimeout",
    "LogRetentionDays",
    "StopConcurrency",
    "AgeAlarmSeconds",
];

/// The template `text` (named `file` in errors) with `stop` added after `stop.after`.
pub fn add_stop(text: &str, file: &str, stop: &NewStop) -> Result<String, TemplateError> {
    let fail = |path: &str, message: String| TemplateError::Route {
        file: file.to_owned(),
        path: path.to_owned(),
        message,
    };
    let resources = read_resources(text, file, &HashMap::new())?;
    let before = resources
        .functions
        .iter()
        .find(|f| f.spec.name == stop.after || f.spec.function == stop.after)
        .ok_or_else(|| {
            fail(
                "Resources",
                format!("no stop named {} to add after", stop.after),
            )
        })?;
    let id = logical_id(&stop.name).ok_or_else(|| {
        fail(
            "Resources",
            format!("stop name {:?} must be letters, digits and '-'", stop.name),
        )
    })?;
    if let Some(lane) = &stop.lane {
        let well_formed = !lane.is_empty()
            && lane != busline_core::config::NEXT_LANE
            && lane
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(fail(
                "Resources",
                format!(
                    "lane name {lane:?} must be lowercase letters, digits and '_', and not next"
                ),
            ));
        }
    }
    check_table_key(&stop.table_key).map_err(|message| fail("Resources", message))?;
    let settings: Vec<(String, String, String)> = stop
        .settings
        .iter()
        .map(|(var, default)| (var.clone(), parameter_name(&id, var), default.clone()))
        .collect();
    let document = crate::parse_document(text, file)?;
    refuse_clashes(&document, &id, !stop.table_key.is_empty(), &settings)
        .map_err(|(path, message)| fail(&path, message))?;

    // A branch ends at the new stop; otherwise it forwards to where `before` did.
    let next = match &stop.lane {
        Some(_) => None,
        None => before.next_queue().map(str::to_owned),
    };
    let rewired = match &stop.lane {
        Some(lane) => add_lane(text, &before.spec.function, &lane_variable(lane), &id),
        None => rewire(text, &before.spec.function, next.as_deref(), &id),
    };
    let mut edited =
        rewired.map_err(|message| fail(&format!("Resources.{}", before.spec.function), message))?;
    edited = insert_section_end(&edited, "Parameters", &parameters_text(&settings))
        .map_err(|message| fail("Parameters", message))?;
    // What the route gives every stop: the ledger's policy, the topic its alarms notify.
    let declares = |id: &str| document.get("Resources").and_then(|r| r.get(id)).is_some();
    let shared = Shared {
        ledger_policy: declares(LEDGER_POLICY),
        alarm_topic: declares(ALARM_TOPIC),
    };
    edited = insert_before_outputs(
        &edited,
        &resources_text(stop, &id, next.as_deref(), &settings, &shared),
    );
    let outputs = outputs_text(&id, !stop.table_key.is_empty());
    edited = insert_section_end(&edited, "Outputs", &outputs)
        .unwrap_or_else(|_| format!("{edited}\nOutputs:\n{outputs}"));

    // What was written must be a route with the new stop after `before` (right after, on its
    // default lane), and lint clean.
    let route = parse_route(&edited, file, &HashMap::new())?;
    let position = |name: &str| route.stops.iter().position(|s| s.function == name);
    let (before_at, new_at) = (
        position(&before.spec.function),
        position(&format!("{id}Function")),
    );
    let placed = match (before_at, new_at, &stop.lane) {
        (Some(b), Some(n), Some(_)) => n > b,
        (Some(b), Some(n), None) => n == b + 1,
        _ => false,
    };
    if !placed {
        return Err(fail(
            "Resources",
            format!("{} did not land after {}", stop.name, stop.after),
        ));
    }
    if let Some(finding) = lint(&edited, file, &HashMap::new())?.into_iter().next() {
        return Err(fail(
            &finding.resource,
            format!("the new route breaks a rule: {finding}"),
        ));
    }
    Ok(edited)
}

/// Refuses a template the new stop's resources and parameters would clash with, or that lacks
/// the parameters they refer to: (where, what) of the first problem.
fn refuse_clashes(
    document: &serde_yaml_ng::Value,
    id: &str,
    table: bool,
    settings: &[(String, String, String)],
) -> Result<(), (String, String)> {
    let resources = document.get("Resources");
    let mut ids = resource_ids(id).to_vec();
    if table {
        ids.push(format!("{id}Table"));
    }
    if let Some(taken) = ids
        .into_iter()
        .find(|name| resources.and_then(|r| r.get(name)).is_some())
    {
        return Err((format!("Resources.{taken}"), "already exists".into()));
    }
    let parameters = document.get("Parameters");
    let has = |name: &str| parameters.and_then(|p| p.get(name)).is_some();
    if let Some(needed) = NEEDED_PARAMETERS.into_iter().find(|name| !has(name)) {
        return Err((
            "Parameters".into(),
            format!(
                "has no {needed}, which the new stop's resources refer to (start from busline's template.yaml)"
            ),
        ));
    }
    if table && settings.iter().any(|(var, _, _)| var == "TABLE_NAME") {
        return Err((
            "Resources".into(),
            "TABLE_NAME names the table the stop gets; do not set it too".into(),
        ));
    }
    match settings.iter().find(|(_, parameter, _)| has(parameter)) {
        Some((var, parameter, _)) => Err((
            format!("Parameters.{parameter}"),
            format!("already exists; name the setting {var} differently"),
        )),
        None => Ok(()),
    }
}

/// A table key is one or two attributes, each `S` or `N`.
fn check_table_key(key: &[(String, String)]) -> Result<(), String> {
    if key.len() > 2 {
        return Err("a DynamoDB table key is a partition key and at most one sort key".into());
    }
    match key
        .iter()
        .find(|(name, kind)| name.is_empty() || !matches!(kind.as_str(), "S" | "N"))
    {
        Some((name, kind)) => Err(format!(
            "table key attribute {name:?} of type {kind:?}: name it and give it type S or N"
        )),
        None => Ok(()),
    }
}

/// `geo-enrich` -> `GeoEnrich`; `None` for an empty name or other characters.
fn logical_id(name: &str) -> Option<String> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then(|| camel_case(name))
}

/// The parameter for setting `var` of stop `id`: `EnrichUrl` for `ENRICH_URL` of `Enrich`,
/// `AuditOutputPrefix` for `OUTPUT_PREFIX` of `Audit`, so stops' parameters never collide.
fn parameter_name(id: &str, var: &str) -> String {
    let name = camel_case(var);
    if name.starts_with(id) {
        name
    } else {
        format!("{id}{name}")
    }
}

/// `ENRICH_URL` -> `EnrichUrl`, `geo-enrich` -> `GeoEnrich`.
fn camel_case(text: &str) -> String {
    text.split(['_', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let lower = part.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn resource_ids(id: &str) -> [String; 6] {
    [
        "Queue",
        "DeadLetterQueue",
        "LogGroup",
        "Function",
        "DeadLetterAlarm",
        "AgeAlarm",
    ]
    .map(|suffix| format!("{id}{suffix}"))
}

/// The lines of `function`'s block under `Resources` (two-space indented key) as a range.
fn block(lines: &[&str], function: &str) -> Option<std::ops::Range<usize>> {
    let header = format!("  {function}:");
    let start = lines.iter().position(|l| l.trim_end() == header)?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let indent = l.len() - l.trim_start().len();
            !l.trim().is_empty() && !l.trim_start().starts_with('#') && indent <= 2
        })
        .map_or(lines.len(), |offset| start + 1 + offset);
    Some(start..end)
}

/// Points `function` at `new`'s queue: its `NEXT_QUEUE_URL` and its send policy.
fn rewire(text: &str, function: &str, next: Option<&str>, new: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let range = block(&lines, function).ok_or("not found as a two-space indented resource")?;
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let new_ref = format!("!Ref {new}Queue");
    let new_arn = format!("!GetAtt {new}Queue.Arn");
    let (mut variable, mut policy) = (false, false);
    let mut in_send_statement = false;
    for line in &mut out[range.clone()] {
        let trimmed = line.trim().to_owned();
        let indent = line[..line.len() - line.trim_start().len()].to_owned();
        match next {
            Some(old) => {
                if trimmed == format!("NEXT_QUEUE_URL: !Ref {old}") {
                    *line = line.replace(&format!("!Ref {old}"), &new_ref);
                    variable = true;
                } else if trimmed == format!("- !GetAtt {old}.Arn") {
                    *line = line.replace(&format!("!GetAtt {old}.Arn"), &new_arn);
                    policy = true;
                }
            }
            // A last stop: it gains a NEXT_QUEUE_URL, and its send statement the new queue.
            None => {
                if trimmed.starts_with("STOP_NAME:") && !variable {
                    line.push_str(&format!("\n{indent}NEXT_QUEUE_URL: {new_ref}"));
                    variable = true;
                } else if trimmed == "Action: sqs:SendMessage" {
                    in_send_statement = true;
                } else if in_send_statement && trimmed == "Resource:" && !policy {
                    line.push_str(&format!("\n{indent}  - {new_arn}"));
                    policy = true;
                }
            }
        }
    }
    if !variable {
        return Err(match next {
            Some(old) => format!(
                "its NEXT_QUEUE_URL is not written as `!Ref {old}`, so it cannot be rewired"
            ),
            None => "it has no STOP_NAME variable to put NEXT_QUEUE_URL beside".into(),
        });
    }
    if !policy {
        return Err(match next {
            Some(old) => format!(
                "no policy statement lists `!GetAtt {old}.Arn`, so its send permission cannot be moved"
            ),
            None => {
                "no sqs:SendMessage statement has a Resource list to add the new queue to".into()
            }
        });
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// Gives `function` a new lane to `new`'s queue: the variable `variable` and the queue in its
/// send policy; its other lanes stay as they are.
fn add_lane(text: &str, function: &str, variable: &str, new: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let range = block(&lines, function).ok_or("not found as a two-space indented resource")?;
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let (mut declared, mut allowed, mut in_send_statement) = (false, false, false);
    for line in &mut out[range] {
        let trimmed = line.trim().to_owned();
        let indent = line[..line.len() - line.trim_start().len()].to_owned();
        if trimmed.starts_with(&format!("{variable}:")) {
            return Err(format!("it already has {variable}"));
        }
        if trimmed.starts_with("STOP_NAME:") && !declared {
            line.push_str(&format!("\n{indent}{variable}: !Ref {new}Queue"));
            declared = true;
        } else if trimmed == "Action: sqs:SendMessage" {
            in_send_statement = true;
        } else if in_send_statement && trimmed == "Resource:" && !allowed {
            line.push_str(&format!("\n{indent}  - !GetAtt {new}Queue.Arn"));
            allowed = true;
        }
    }
    if !declared {
        return Err(format!(
            "it has no STOP_NAME variable to put {variable} beside"
        ));
    }
    if !allowed {
        return Err(
            "no sqs:SendMessage statement has a Resource list to add the new queue to".into(),
        );
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// `text` with `addition` appended to the end of the top-level section `section`.
fn insert_section_end(text: &str, section: &str, addition: &str) -> Result<String, String> {
    if addition.is_empty() {
        return Ok(text.to_owned());
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("{section}:"))
        .ok_or_else(|| format!("the template has no top-level {section}: section"))?;
    let mut end = lines[start + 1..]
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with(' ') && !l.starts_with('#'))
        .map_or(lines.len(), |offset| start + 1 + offset);
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut out = lines[..end].join("\n");
    out.push('\n');
    out.push_str(addition);
    let rest = lines[end..].join("\n");
    if !rest.is_empty() {
        out.push_str(&rest);
        out.push('\n');
    }
    Ok(out)
}

/// `text` with `block` inserted before the top-level `Outputs:` (at the end when there is none).
fn insert_before_outputs(text: &str, block: &str) -> String {
    match text.find("\nOutputs:") {
        Some(at) => format!(
            "{}\n{block}{}",
            text[..at].trim_end_matches('\n'),
            &text[at..]
        ),
        None => format!("{}\n{block}", text.trim_end_matches('\n')),
    }
}

fn parameters_text(settings: &[(String, String, String)]) -> String {
    let mut out = String::new();
    for (var, parameter, default) in settings {
        let _ = write!(
            out,
            "  {parameter}:\n    Type: String\n    Default: {}\n    Description: {var} of the stop added by bus add-stop.\n",
            yaml_string(default)
        );
    }
    out
}

fn outputs_text(id: &str, table: bool) -> String {
    let mut out = format!(
        "  {id}QueueUrl:\n    Value: !Ref {id}Queue\n  {id}DeadLetterQueueUrl:\n    Value: !Ref {id}DeadLetterQueue\n"
    );
    if table {
        let _ = write!(out, "  {id}TableName:\n    Value: !Ref {id}Table\n");
    }
    out
}

/// `text` as a YAML scalar, quoted where YAML needs it.
fn yaml_string(text: &str) -> String {
    serde_yaml_ng::to_string(text)
        .map(|yaml| yaml.trim_end().to_owned())
        .unwrap_or_else(|_| format!("{text:?}"))
}

/// The new stop's resources, shaped like the template's own stops.
/// The managed policy a route's stops need to keep the trip ledger (template.yaml declares it).
const LEDGER_POLICY: &str = "TripLedgerAccess";
/// The topic every alarm of a route notifies (template.yaml declares it).
const ALARM_TOPIC: &str = "AlarmTopic";

/// Resources of the route a new stop uses when the template declares them.
struct Shared {
    ledger_policy: bool,
    alarm_topic: bool,
}

fn resources_text(
    stop: &NewStop,
    id: &str,
    next: Option<&str>,
    settings: &[(String, String, String)],
    shared: &Shared,
) -> String {
    let text = stop_resources_text(stop, id, next, settings, shared.ledger_policy);
    if !shared.alarm_topic {
        return text;
    }
    let alarm = "    Type: AWS::CloudWatch::Alarm\n    Properties:\n";
    text.replace(
        alarm,
        &format!("{alarm}      AlarmActions:\n        - !Ref {ALARM_TOPIC}\n"),
    )
}

fn stop_resources_text(
    stop: &NewStop,
    id: &str,
    next: Option<&str>,
    settings: &[(String, String, String)],
    ledger: bool,
) -> String {
    let name = &stop.name;
    let binary = stop.binary.as_deref().unwrap_or(&stop.kind);
    let mut variables =
        format!("          STOP_NAME: {name}\n          QUEUE_URL: !Ref {id}Queue\n");
    if binary != stop.kind {
        let _ = writeln!(variables, "          STOP_KIND: {}", stop.kind);
    }
    if let Some(next) = next {
        let _ = writeln!(variables, "          NEXT_QUEUE_URL: !Ref {next}");
    }
    let _ = writeln!(
        variables,
        "          DEAD_LETTER_QUEUE_URL: !Ref {id}DeadLetterQueue"
    );
    for (var, parameter, _) in settings {
        let _ = writeln!(variables, "          {var}: !Ref {parameter}");
    }
    if !stop.table_key.is_empty() {
        let _ = writeln!(variables, "          TABLE_NAME: !Ref {id}Table");
    }
    let next_arn = next
        .map(|q| format!("                - !GetAtt {q}.Arn\n"))
        .unwrap_or_default();
    const SSE: &str = "    Metadata:\n      checkov:\n        skip:\n          - id: CKV_AWS_27\n            comment: Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); checkov counts only KMS, which would add a KMS request per message.\n";
    format!(
        r#"  # --- {name} (bus add-stop: kind {kind}, after {after}) ---
  {id}Queue:
    Type: AWS::SQS::Queue
{SSE}    Properties:
      VisibilityTimeout: !Ref QueueVisibilityTimeout
      MessageRetentionPeriod: 345600
      SqsManagedSseEnabled: true
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt {id}DeadLetterQueue.Arn
        maxReceiveCount: !Ref MaxReceiveCount
  {id}DeadLetterQueue:
    Type: AWS::SQS::Queue
{SSE}    Properties:
      MessageRetentionPeriod: 1209600
      SqsManagedSseEnabled: true
  {id}LogGroup:
    Type: AWS::Logs::LogGroup
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_158
            comment: Log lines carry ids and counts, never payloads; CloudWatch Logs encrypts them at rest by default.
    Properties:
      RetentionInDays: !Ref LogRetentionDays
  {id}Function:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: {binary}
      checkov:
        skip:
          - id: CKV_AWS_116
            comment: Failures are dead-lettered by the SQS redrive policy and by the stop itself, with reasons; a function DLQ only serves async invokes.
          - id: CKV_AWS_117
            comment: The function reaches its outside resources through their public endpoints; no VPC resources.
          - id: CKV_AWS_173
            comment: Environment variables hold queue URLs and settings, no secrets; Lambda encrypts them at rest with its service key.
    Properties:
      CodeUri: .
      LoggingConfig:
        LogGroup: !Ref {id}LogGroup
      Environment:
        Variables:
{variables}      Policies:
{ledger_policy}        - Statement:
            - Sid: SendOnTheRoute
              Effect: Allow
              Action: sqs:SendMessage
              Resource:
{next_arn}                - !GetAtt {id}DeadLetterQueue.Arn
            - Sid: HandBackAndBackOff
              Effect: Allow
              Action: sqs:ChangeMessageVisibility
              Resource: !GetAtt {id}Queue.Arn
            - Sid: GetObject
              Effect: Allow
              Action: s3:GetObject
              Resource:
{reads}                - !Sub "${{DataBucket.Arn}}/claim-check/*"
            - Sid: PutObject
              Effect: Allow
              Action: s3:PutObject
              Resource:
{writes}                - !Sub "${{DataBucket.Arn}}/claim-check/*"
                - !Sub "${{DataBucket.Arn}}/quarantine/*"
            - Sid: PublishMetrics
              Effect: Allow
              Action: cloudwatch:PutMetricData
              Resource: "*"
              Condition:
                StringEquals:
                  cloudwatch:namespace: busline
{table_statement}      Events:
        Bus:
          Type: SQS
          Properties:
            Queue: !GetAtt {id}Queue.Arn
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes:
              - ReportBatchItemFailures
            ScalingConfig:
              MaximumConcurrency: !Ref StopConcurrency
  {id}DeadLetterAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: !Sub "busline ${{RouteName}}: buses dead-lettered at {name}; read their busline.reason attribute"
      Namespace: AWS/SQS
      MetricName: ApproximateNumberOfMessagesVisible
      Dimensions:
        - Name: QueueName
          Value: !GetAtt {id}DeadLetterQueue.QueueName
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  {id}AgeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: !Sub "busline ${{RouteName}}: buses wait too long for {name}"
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      Dimensions:
        - Name: QueueName
          Value: !GetAtt {id}Queue.QueueName
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 5
      Threshold: !Ref AgeAlarmSeconds
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
{table}"#,
        kind = stop.kind,
        table_statement = table_statement(id, &stop.table_key) + &secrets_statement(&stop.secrets),
        table = table_text(stop, id),
        after = match &stop.lane {
            Some(lane) => format!("{} on lane {lane}", stop.after),
            None => stop.after.clone(),
        },
        ledger_policy = if ledger {
            format!("        - !Ref {LEDGER_POLICY}\n")
        } else {
            String::new()
        },
        reads = bucket_resources(&stop.reads),
        writes = bucket_resources(&stop.writes),
    )
}

/// Policy resource lines for objects under each key prefix of the data bucket.
fn bucket_resources(prefixes: &[String]) -> String {
    prefixes
        .iter()
        .map(|prefix| {
            format!(
                "                - !Sub \"${{DataBucket.Arn}}/{}*\"\n",
                prefix.trim_start_matches('/')
            )
        })
        .collect()
}

/// The policy statement that lets the stop describe its table and put items in it.
fn table_statement(id: &str, key: &[(String, String)]) -> String {
    if key.is_empty() {
        return String::new();
    }
    format!(
        "            - Sid: WriteTable\n              Effect: Allow\n              Action:\n                - dynamodb:DescribeTable\n                - dynamodb:BatchWriteItem\n                - dynamodb:PutItem\n              Resource: !GetAtt {id}Table.Arn\n"
    )
}

/// The policy statement that lets the stop read its secrets: by ARN, or by name (any of the
/// name's versions' six-character suffixes, as Secrets Manager makes ARNs).
fn secrets_statement(secrets: &[String]) -> String {
    if secrets.is_empty() {
        return String::new();
    }
    let mut out = "            - Sid: ReadSecrets\n              Effect: Allow\n              Action: secretsmanager:GetSecretValue\n              Resource:\n".to_owned();
    for secret in secrets {
        let arn = if secret.starts_with("arn:") {
            yaml_string(secret)
        } else {
            format!(
                "!Sub \"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{secret}-??????\""
            )
        };
        let _ = writeln!(out, "                - {arn}");
    }
    out
}

/// The stop's DynamoDB table: on demand, encrypted, point-in-time recovery, kept when the
/// stack goes.
fn table_text(stop: &NewStop, id: &str) -> String {
    if stop.table_key.is_empty() {
        return String::new();
    }
    let mut definitions = String::new();
    let mut schema = String::new();
    for (position, (name, kind)) in stop.table_key.iter().enumerate() {
        let role = if position == 0 { "HASH" } else { "RANGE" };
        let _ = write!(
            definitions,
            "        - AttributeName: {name}\n          AttributeType: {kind}\n"
        );
        let _ = write!(
            schema,
            "        - AttributeName: {name}\n          KeyType: {role}\n"
        );
    }
    format!(
        r#"  {id}Table:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    UpdateReplacePolicy: Retain
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_119
            comment: Encrypted at rest with DynamoDB's AWS managed key (SSESpecification); a customer managed key is one more key to pay for and rotate.
    Properties:
      TableName: !Sub "${{RouteName}}-{name}"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
{definitions}      KeySchema:
{schema}      SSESpecification:
        SSEEnabled: true
      PointInTimeRecoverySpecification:
        PointInTimeRecoveryEnabled: true
"#,
        name = stop.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_allowed_by_name_with_any_version_suffix_or_by_its_arn() {
        let statement = secrets_statement(&[
            "warehouse-db".into(),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-AbCdEf".into(),
        ]);
        assert_eq!(
            statement,
            "            - Sid: ReadSecrets\n              Effect: Allow\n              Action: secretsmanager:GetSecretValue\n              Resource:\n                - !Sub \"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:warehouse-db-??????\"\n                - arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-AbCdEf\n"
        );
        assert_eq!(secrets_statement(&[]), "");
    }

    #[test]
    fn a_new_stop_gets_the_ledger_policy_and_alarm_topic_only_of_a_route_that_has_them() {
        let stop = NewStop {
            name: "audit".into(),
            kind: "transform".into(),
            after: "transform".into(),
            ..NewStop::default()
        };
        let policy = "      Policies:\n        - !Ref TripLedgerAccess\n";
        let actions = "      AlarmActions:\n        - !Ref AlarmTopic\n";
        let shared = Shared {
            ledger_policy: true,
            alarm_topic: true,
        };
        let text = resources_text(&stop, "Audit", None, &[], &shared);
        assert_eq!(text.matches(policy).count(), 1);
        assert_eq!(
            text.matches(actions).count(),
            2,
            "both alarms notify the topic"
        );
        let bare = Shared {
            ledger_policy: false,
            alarm_topic: false,
        };
        let text = resources_text(&stop, "Audit", None, &[], &bare);
        assert!(!text.contains("TripLedgerAccess") && !text.contains("AlarmTopic"));
    }
}
