"""The deploy proof: `sam build` and `sam deploy` of template.yaml onto MiniStack, then the whole
route by API and by schedule, the trip ledger's _SUCCESS manifest and completion event, the
dead-letter and quarantine paths, logs, metrics, a no-op redeploy and a clean delete.

Run by ./infra/test after the release Lambda build; on its own:

    ./infra/.venv/bin/python -m unittest discover -s tests/deploy -v

It uses BUSLINE_MINISTACK_URL when set, else starts MiniStack with infra/emulator. The tests run
in order (their names are numbered) against one stack, deployed once in setUpClass.
"""

import json
import os
import subprocess
import tempfile
import time
import unittest
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
INPUTS = [ROOT / "samples/colors/colors.csv", ROOT / "tests/fixtures/messy/paints.csv"]
# The one bad record of INPUTS, as extract reports it.
BAD_RECORD = "input/paints.csv:3: expected 4 fields as in the header, found 3"
POISON = "this is not a bus"
MANIFEST = "_SUCCESS"
# Short timeouts so a failing bus reaches its third receive in under a minute; `bus lint`
# checks them against the 6 x timeout + window rule before the deploy.
# A route name of its own keeps this stack's metrics apart from other runs on the same emulator.
ROUTE = f"proof-{uuid.uuid4().hex[:8]}"
PARAMETERS = {
    "RouteName": ROUTE,
    "ScheduleExpression": "rate(1 minute)",
    "StopTimeout": "3",
    "QueueVisibilityTimeout": "19",
    "MaxReceiveCount": "3",
    "MetricsMode": "cloudwatch",
}


def endpoint():
    """MiniStack's URL: the test command's instance, else one started here."""
    url = os.environ.get("BUSLINE_MINISTACK_URL")
    if url:
        return url
    started = run([str(ROOT / "infra/emulator"), "start", "ministack"])
    for line in started.stdout.splitlines():
        if line.startswith("AWS_ENDPOINT_URL="):
            return line.split("=", 1)[1]
    raise RuntimeError(f"infra/emulator start ministack printed no AWS_ENDPOINT_URL:\n{started.stdout}")


def run(argv, env=None, cwd=ROOT):
    """Runs argv, failing with its output when it exits non-zero."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done


def poll(what, probe, timeout_s, every_s=2):
    """probe()'s first truthy answer within timeout_s, else a failure naming `what` (or what())."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    what = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last answer: {last!r}")


def quarantine_files(s3, bucket, prefix):
    """Every line of the quarantine files under `prefix`, with the trip its key names."""
    rejections = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            trip = obj["Key"].split("trip=", 1)[1].split("/", 1)[0]
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            rejections += [{"trip": trip, **json.loads(line)} for line in body.splitlines() if line]
    return rejections


def missing(call, *codes):
    """True when call() fails with one of the error codes (the resource is gone)."""
    try:
        call()
    except ClientError as err:
        if err.response["Error"]["Code"] in codes:
            return True
        raise
    return False


class Deployment:
    """A stack of template.yaml deployed onto MiniStack with `parameters`, after `bus lint`."""

    def __init__(self, name, parameters):
        self.url = endpoint()
        self.env = {
            **os.environ,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "SAM_CLI_TELEMETRY": "0",
            # sam and cargo-lambda come from the pinned tools venv.
            "PATH": f"{ROOT / 'infra/.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.env.pop("AWS_PROFILE", None)
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        config = Config(retries={"max_attempts": 2})
        self.client = lambda service: session.client(service, endpoint_url=self.url, config=config)
        self.stack = f"busline-{name}-{uuid.uuid4().hex[:8]}"
        self.artifacts = f"{self.stack}-artifacts"
        self.client("s3").create_bucket(Bucket=self.artifacts)

        lint = ["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--", "lint", "template.yaml"]
        run(lint + [arg for n, v in parameters.items() for arg in ("--parameter", f"{n}={v}")], env=self.env)
        # sam build reuses the release build of ./infra/test (cargo lambda build finds it fresh).
        run(["sam", "build"], env=self.env)
        self.deploy_argv = [
            "sam", "deploy",
            "--stack-name", self.stack,
            "--s3-bucket", self.artifacts,
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            # SAM splits overrides at spaces unless the value is quoted.
            "--parameter-overrides", *(f'{n}="{v}"' for n, v in parameters.items()),
        ]
        started = time.monotonic()
        self.first_deploy = run(self.deploy_argv, env=self.env)
        print(f"\nsam deploy of {self.stack}: {time.monotonic() - started:.1f} s", flush=True)
        listed = run(["sam", "list", "stack-outputs", "--stack-name", self.stack, "--output", "json"], env=self.env)
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in json.loads(listed.stdout)}

    def delete_if_left(self):
        """Deletes the stack if a failed test left it, so the next run on the emulator starts clean."""
        stacks = self.client("cloudformation").list_stacks(StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])
        if any(s["StackName"] == self.stack for s in stacks["StackSummaries"]):
            print(f"deleting {self.stack}, which no test deleted", flush=True)
            self.client("cloudformation").delete_stack(StackName=self.stack)


class DeployedRoute(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.deployment = Deployment("proof", PARAMETERS)
        d = cls.deployment
        cls.url, cls.env, cls.stack, cls.deploy_argv = d.url, d.env, d.stack, d.deploy_argv
        cls.client = staticmethod(d.client)
        cls.first_deploy, cls.outputs = d.first_deploy, d.outputs
        cls.resources = cls.stack_resources()
        cls.bucket = cls.outputs["DataBucketName"]
        s3 = cls.client("s3")
        for path in INPUTS:
            s3.put_object(Bucket=cls.bucket, Key=f"input/{path.name}", Body=path.read_bytes())
        # Sent now so its three receives overlap the trips below.
        cls.client("sqs").send_message(QueueUrl=cls.outputs["TransformQueueUrl"], MessageBody=POISON)
        cls.completions = cls.completion_queue()

    @classmethod
    def completion_queue(cls):
        """A queue that a rule fills with every busline Trip Completed event (as a user's
        downstream job would listen); its URL."""
        sqs, events = cls.client("sqs"), cls.client("events")
        url = sqs.create_queue(QueueName=f"{ROUTE}-completed")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"{ROUTE}-completed"
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["busline"], "detail-type": ["busline Trip Completed"]}))
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def completed_events(self):
        """Every completion event received so far, received and deleted, by trip."""
        sqs = self.client("sqs")
        cls = type(self)
        cls.seen_events = getattr(cls, "seen_events", [])
        while messages := sqs.receive_message(QueueUrl=self.completions, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            for message in messages:
                cls.seen_events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.completions, ReceiptHandle=message["ReceiptHandle"])
        return cls.seen_events

    @classmethod
    def stack_resources(cls):
        pages = cls.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=cls.stack)
        return {r["LogicalResourceId"]: r for page in pages for r in page["StackResourceSummaries"]}

    @classmethod
    def tearDownClass(cls):
        cls.deployment.delete_if_left()

    # --- helpers ------------------------------------------------------------------------------

    def physical(self, logical):
        return self.resources[logical]["PhysicalResourceId"]

    def outputs_of(self, trip):
        """{key: bytes} of the trip's output objects in the data bucket (not its manifest)."""
        s3 = self.client("s3")
        prefix = f"output/trip={trip}/"
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return {
            o["Key"]: s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
            for o in listed if not o["Key"].endswith(f"/{MANIFEST}")
        }

    def assert_manifest_matches_the_bucket(self, trip, rejected):
        """The trip's _SUCCESS manifest: written once (one version in the versioned bucket),
        listing exactly the trip's output objects, with load's count equal to their records; and
        exactly one completion event for it."""
        s3, key = self.client("s3"), f"output/trip={trip}/{MANIFEST}"
        manifest = json.loads(poll(f"{key}", lambda: missing(
            lambda: s3.head_object(Bucket=self.bucket, Key=key), "404", "NoSuchKey") is False and
            s3.get_object(Bucket=self.bucket, Key=key)["Body"].read(), timeout_s=60))
        versions = s3.list_object_versions(Bucket=self.bucket, Prefix=key).get("Versions", [])
        self.assertEqual(len([v for v in versions if v["Key"] == key]), 1, versions)
        outputs = self.outputs_of(trip)
        self.assertEqual([o["key"] for o in manifest["objects"]], sorted(outputs))
        self.assertEqual([o["size"] for o in manifest["objects"]], [len(outputs[k]) for k in sorted(outputs)])
        records = sum(body.count(b"\n") for body in outputs.values())
        self.assertEqual(manifest["stops"]["load"]["dropped_off"], records)
        self.assertEqual((manifest["state"], manifest["rejected"], manifest["dead_lettered"]), ("completed", rejected, 0))
        self.assertEqual(manifest["stops"]["depot"]["picked_up"], len(INPUTS))
        events = poll(f"the completion event of trip {trip}", lambda: [
            e for e in self.completed_events() if e["detail"]["trip"] == trip], timeout_s=30)
        time.sleep(2)
        events = [e for e in self.completed_events() if e["detail"]["trip"] == trip]
        self.assertEqual(len(events), 1, events)
        self.assertEqual(events[0]["detail"]["key"], key)
        self.assertEqual(events[0]["detail"]["object_count"], len(outputs))

    def trips_in_output(self):
        listed = self.client("s3").list_objects_v2(Bucket=self.bucket, Prefix="output/trip=", Delimiter="/")
        return {p["Prefix"][len("output/trip=") : -1] for p in listed.get("CommonPrefixes", [])}

    def embedded_ride(self, trip):
        """{key: bytes} the embedded `bus ride` writes for the same input and trip id."""
        with tempfile.TemporaryDirectory() as work:
            inputs, out = Path(work, "input"), Path(work, "out")
            inputs.mkdir()
            for path in INPUTS:
                (inputs / path.name).write_bytes(path.read_bytes())
            ride = ["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--", "ride"]
            run(ride + ["--input", str(inputs), "--output", str(out), "--trip-id", trip, "--parameter", f"RouteName={ROUTE}"])
            return {
                str(p.relative_to(out)): p.read_bytes()
                for p in (out / "output").rglob("*") if p.is_file() and p.name != MANIFEST
            }

    def assert_trip_equals_embedded_ride(self, trip):
        expected = self.embedded_ride(trip)
        self.assertEqual(len(expected), 2, f"the embedded ride should write two buses: {sorted(expected)}")
        # Both load buses land within seconds of each other; wait for the set, then compare bytes.
        landed = poll(f"trip {trip}'s {len(expected)} output objects", lambda: (
            found if len(found := self.outputs_of(trip)) >= len(expected) else None
        ), timeout_s=90)
        self.assertEqual(sorted(landed), sorted(expected))
        for key, body in expected.items():
            self.assertEqual(landed[key], body, f"{key} differs from the embedded ride's")

    def quarantined(self):
        """Every rejection in the bucket's quarantine files (quarantine/trip=<trip>/<stop>/),
        with its trip."""
        return quarantine_files(self.client("s3"), self.bucket, "quarantine/")

    # --- the proof ----------------------------------------------------------------------------

    def test_1_api_call_starts_a_trip_that_matches_the_embedded_ride(self):
        trip = f"proof-api-{uuid.uuid4().hex[:8]}"
        # The README's command; the local cloud serves the API at <id>.execute-api.localhost.
        answer = run([
            "curl", "--silent", "--show-error", "--write-out", "\n%{http_code}",
            "--aws-sigv4", f"aws:amz:{REGION}:execute-api", "--user", "test:test",
            "--header", "content-type: application/json",
            "--data", json.dumps({"trip_id": trip}),
            self.outputs["TripsApiUrl"],
        ]).stdout
        body, status = answer.rsplit("\n", 1)
        self.assertEqual(status, "202", body)
        started = json.loads(body)
        self.assertEqual(started, {"trip_id": trip, "tickets": len(INPUTS)}, body)
        self.assert_trip_equals_embedded_ride(trip)

        # The bad record is in quarantine with its reason; the rest of its bus arrived above.
        rejections = poll("the API trip's rejection in the quarantine files", lambda: [
            r for r in self.quarantined() if r["trip"] == trip
        ], timeout_s=30)
        self.assertEqual([r["reason"] for r in rejections], [BAD_RECORD], rejections)
        self.assertEqual(rejections[0]["data"]["raw"], ["Green", "#00FF00", "(0, 255, 0)"])
        shown = json.loads(self.bus("quarantine", "show", trip, "--stack-name", self.stack, "--json"))
        self.assertEqual([(line["stop"], line["reason"]) for line in shown], [("extract", BAD_RECORD)])
        self.assert_manifest_matches_the_bucket(trip, rejected=1)
        # bus trip reads the same from the stack's ledger table.
        view = json.loads(self.bus("trip", trip, "--ledger-table", self.outputs["TripLedgerTableName"], "--json"))
        self.assertEqual((view["progress"]["state"], view["progress"]["rejected"]), ("completed", 1), view)
        landed = sum(body.count(b"\n") for body in self.outputs_of(trip).values())
        self.assertEqual(view["progress"]["stops"]["load"]["dropped_off"], landed, view)
        type(self).api_trip = trip

    def test_1b_a_corrected_rejection_replayed_completes_the_trip_again(self):
        trip, s3 = type(self).api_trip, self.client("s3")
        key = f"output/trip={trip}/{MANIFEST}"
        before = self.outputs_of(trip)
        records = sum(body.count(b"\n") for body in before.values())
        # The operator fixes the bad row's data (it lost its Stock) and keeps its id.
        shown = json.loads(self.bus("quarantine", "show", trip, "--stack-name", self.stack, "--json"))
        name, hex_code, rgb = shown[0]["data"]["raw"]
        shown[0]["data"] = {"Name": name, "HEX": hex_code, "RGB": rgb, "Stock": "3"}
        with tempfile.TemporaryDirectory() as work:
            fix = Path(work, "fix.json")
            fix.write_text(json.dumps(shown))
            replay = ["quarantine", "replay", str(fix), "--trip", trip, "--stop", "transform", "--stack-name", self.stack, "--json"]
            report = json.loads(self.bus(*replay))
            self.assertEqual((report["passengers"], report["buses"], report["recorded"]), (1, 1, "new"), report)
            manifest = json.loads(poll(f"{key} rewritten with the replayed passenger", lambda: (
                body if json.loads(body := s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()).get("replayed") else None
            ), timeout_s=90))
            outputs = self.outputs_of(trip)
            self.assertEqual([o["key"] for o in manifest["objects"]], sorted(outputs))
            self.assertEqual(sum(body.count(b"\n") for body in outputs.values()), records + 1)
            self.assertEqual(manifest["stops"]["load"]["dropped_off"], records + 1)
            self.assertEqual((manifest["state"], manifest["rejected"], manifest["replayed"]), ("completed", 1, 1))
            [replayed_key] = set(outputs) - set(before)
            self.assertIn(b'"Green"', outputs[replayed_key])
            events = poll(f"the second completion event of trip {trip}", lambda: (
                found if len(found := [e for e in self.completed_events() if e["detail"]["trip"] == trip]) >= 2 else None
            ), timeout_s=30)
            self.assertEqual([e["detail"]["replayed"] for e in events], [0, 1])
            # The same file again sends the same bus: nothing is counted or announced twice.
            self.assertEqual(json.loads(self.bus(*replay))["recorded"], "already_recorded")
            # Metrics count every ride: load now counts the replayed passenger twice (test_5).
            type(self).dropped_off_again = 1
        # Load writes the replayed bus's object again, under the same key, and completes nothing.
        poll(f"{replayed_key} written again", lambda: len([
            v for v in s3.list_object_versions(Bucket=self.bucket, Prefix=replayed_key).get("Versions", [])
            if v["Key"] == replayed_key]) == 2 or None, timeout_s=90)
        time.sleep(3)
        versions = s3.list_object_versions(Bucket=self.bucket, Prefix=key).get("Versions", [])
        self.assertEqual(len([v for v in versions if v["Key"] == key]), 2, versions)
        self.assertEqual(len([e for e in self.completed_events() if e["detail"]["trip"] == trip]), 2)
        self.assertEqual(sum(body.count(b"\n") for body in self.outputs_of(trip).values()), records + 1)

    def test_2_poisoned_bus_is_dead_lettered_with_its_reason_at_its_first_receive(self):
        sqs = self.client("sqs")
        dead_letters = self.outputs["TransformDeadLetterQueueUrl"]
        messages = poll("the poisoned bus in the transform dead-letter queue", lambda: sqs.receive_message(
            QueueUrl=dead_letters, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"],
        ).get("Messages"), timeout_s=120)
        self.assertEqual([m["Body"] for m in messages], [POISON])
        attributes = {k: v["StringValue"] for k, v in messages[0]["MessageAttributes"].items()}
        self.assertEqual(attributes["busline.stop"], "transform")
        # A body that can never be read is not retried: it is dead-lettered at once.
        self.assertEqual(attributes["busline.receive-count"], "1")
        self.assertEqual(attributes["busline.class"], "permanent")
        self.assertEqual(attributes["busline.reason"], "bus body is not a valid envelope: expected ident at line 1 column 2")
        # The stop moved it and acknowledged it, so the queue's own redrive has nothing left to move.
        queue = sqs.get_queue_attributes(QueueUrl=self.outputs["TransformQueueUrl"], AttributeNames=["All"])
        counts = {k: queue["Attributes"][k] for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")}
        self.assertEqual(counts, {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"})

    def bus(self, *args, code=0):
        """`bus` (the workspace's) against this stack; its stdout, failing unless it exits `code`."""
        argv = ["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--", *args]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True)
        self.assertEqual(done.returncode, code, f"{' '.join(args)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        return done.stdout

    def test_2b_bus_dlq_redrives_the_poisoned_bus_and_bus_status_counts_it(self):
        stack = ["--stack-name", self.stack]
        poll("the poisoned bus in transform's dead-letter queue", lambda: [
            q for q in json.loads(self.bus("dlq", "list", *stack, "--json"))
            if q["stop"] == "transform" and q["depth"]["visible"] + q["depth"]["in_flight"] == 1], timeout_s=120)
        print("\n" + self.bus("status", *stack, code=2), flush=True)
        status = json.loads(self.bus("status", *stack, "--json", code=2))
        self.assertEqual({s["stop"]: (s["dead_letters"] or {}).get("visible", 0) + (s["dead_letters"] or {}).get("in_flight", 0)
                          for s in status["stops"]}, {"depot": 0, "extract": 0, "transform": 1, "load": 0})
        self.assertEqual(len(status["alarms"]), 6, status["alarms"])
        # Two alarms per queue reader; MiniStack evaluates none, so they wait for data.
        self.assertEqual({s["stop"]: s["alarm"] for s in status["stops"]},
                         {"depot": None, "extract": "INSUFFICIENT_DATA", "transform": "INSUFFICIENT_DATA",
                          "load": "INSUFFICIENT_DATA"})
        self.assertEqual(sorted(a["stop"] for a in status["alarms"]), ["extract"] * 2 + ["load"] * 2 + ["transform"] * 2)
        # test_2 read it, so it may be hidden for a while yet.
        letters = poll("the poisoned bus in bus dlq show", lambda: json.loads(
            self.bus("dlq", "show", "transform", *stack, "--json")), timeout_s=60)
        self.assertEqual([(l["contents"]["unreadable"]["preview"], l["class"], l["receives"]) for l in letters],
                         [(POISON, "permanent", 1)])
        self.assertIn("bus body is not a valid envelope", self.bus("dlq", "show", "transform", *stack))
        moved = json.loads(self.bus("dlq", "redrive", "transform", *stack, "--json"))
        self.assertEqual((moved["moved"], moved["kept"], moved["failed"]), (1, 0, []), moved)
        # Still poisoned: transform dead-letters it again, as a new message, at its first receive.
        again = poll("the redriven bus dead-lettered again", lambda: [
            l for l in json.loads(self.bus("dlq", "show", "transform", *stack, "--json"))
            if l["message_id"] != letters[0]["message_id"]], timeout_s=120)
        self.assertEqual([(l["contents"]["unreadable"]["preview"], l["receives"]) for l in again], [(POISON, 1)])
        unknown = subprocess.run(["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--", "dlq", "show", "enrich", *stack],
                                 cwd=ROOT, env=self.env, capture_output=True, text=True)
        self.assertIn("the route has no stop enrich; its stops are depot, extract, transform, load", unknown.stderr)

    def test_3_schedule_starts_a_trip_by_itself(self):
        api_trip = getattr(self, "api_trip", None)
        scheduled = poll("a trip started by the schedule", lambda: sorted(self.trips_in_output() - {api_trip}), timeout_s=150)
        self.assert_trip_equals_embedded_ride(scheduled[0])
        self.assert_manifest_matches_the_bucket(scheduled[0], rejected=1)

    def test_4_json_logs_carry_trip_and_stop(self):
        trip = getattr(self, "api_trip", None)
        self.assertIsNotNone(trip, "test_1 did not start a trip")
        logs = self.client("logs")
        group = self.physical("TransformLogGroup")

        def handled_lines():
            events = logs.filter_log_events(logGroupName=group).get("events", [])
            lines = [json.loads(e["message"]) for e in events if e["message"].startswith("{")]
            return [line for line in lines if line.get("fields", {}).get("message") == "bus handled"
                    and trip in json.dumps(line)]

        lines = poll(f"transform's 'bus handled' lines for {trip} in {group}", handled_lines, timeout_s=30)
        text = json.dumps(lines[0])
        for needle in ['"stop": "transform"', f'"trip": "{trip}"', '"requestId"', '"message_id"']:
            self.assertIn(needle, text)

    def test_5_metrics_match_what_landed(self):
        cloudwatch = self.client("cloudwatch")
        listed = cloudwatch.list_metrics(Namespace="busline", Dimensions=[{"Name": "Route", "Value": ROUTE}])
        self.assertIn("DroppedOff", {m["MetricName"] for m in listed["Metrics"]})

        def dropped_off_at_load():
            now = time.time()
            stats = cloudwatch.get_metric_statistics(
                Namespace="busline", MetricName="DroppedOff", StartTime=now - 3600, EndTime=now + 60,
                Period=3600, Statistics=["Sum"],
                Dimensions=[{"Name": "Route", "Value": ROUTE}, {"Name": "Stop", "Value": "load"}],
            )
            return int(sum(p["Sum"] for p in stats["Datapoints"]))

        def landed_lines():
            return sum(body.count(b"\n") for trip in self.trips_in_output() for body in self.outputs_of(trip).values())

        # The schedule keeps starting trips, so read until both sides agree between two reads.
        # A passenger written again under the same key (test_1b's second replay) lands once
        # and counts twice.
        reads, again = [], getattr(type(self), "dropped_off_again", 0)

        def agreed():
            reads.append((landed_lines(), dropped_off_at_load() - again, landed_lines()))
            before, metric, after = reads[-1]
            return before == metric == after and metric > 0

        poll(lambda: f"DroppedOff at load to equal the passengers in the output objects; (landed, metric, landed): {reads}",
             agreed, timeout_s=60)

    def test_5b_every_alarm_notifies_the_topic_and_the_dashboard_graphs_every_stop(self):
        topic = self.outputs["AlarmTopicArn"]
        alarms = [self.physical(logical) for logical, r in self.resources.items() if r["ResourceType"] == "AWS::CloudWatch::Alarm"]
        self.assertEqual(len(alarms), 6, alarms)
        described = self.client("cloudwatch").describe_alarms(AlarmNames=alarms)["MetricAlarms"]
        self.assertEqual({a["AlarmName"]: a["AlarmActions"] for a in described}, {a: [topic] for a in alarms})
        # MiniStack keeps no KmsMasterKeyId: checkov (CKV_AWS_26) checks the topic's encryption in the template.
        attributes = self.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
        self.assertEqual(attributes["TopicArn"], topic)
        body = json.loads(self.client("cloudwatch").get_dashboard(DashboardName=self.outputs["DashboardName"])["DashboardBody"])
        titles = [w["properties"]["title"] for w in body["widgets"]]
        self.assertEqual(len(titles), 9, titles)
        expressions = [w["properties"]["metrics"][0][0]["expression"] for w in body["widgets"]]
        # The busline graphs search this route's stops; the AWS graphs this stack's queues and functions.
        self.assertTrue(all(f'Route="{ROUTE}"' in e for e in expressions[:5]), expressions)
        self.assertTrue(all(self.stack in e for e in expressions[5:]), expressions)

    def test_6_second_deploy_changes_nothing(self):
        cloudformation = self.client("cloudformation")
        events_before = cloudformation.describe_stack_events(StackName=self.stack)["StackEvents"]
        again = run(self.deploy_argv, env=self.env)
        self.assertIn("No changes to deploy", again.stdout + again.stderr)
        events_after = cloudformation.describe_stack_events(StackName=self.stack)["StackEvents"]
        self.assertEqual(len(events_after), len(events_before))
        self.assertEqual(self.stack_resources().keys(), self.resources.keys())

    def test_7_delete_leaves_only_the_data_bucket(self):
        resources = self.stack_resources()
        bucket = resources["DataBucket"]["PhysicalResourceId"]
        sqs, lam, iam, logs = (self.client(s) for s in ("sqs", "lambda", "iam", "logs"))
        events, apis, cloudwatch, s3 = (self.client(s) for s in ("events", "apigatewayv2", "cloudwatch", "s3"))
        dynamodb, sns = self.client("dynamodb"), self.client("sns")
        gone = {
            "AWS::SQS::Queue": lambda id: missing(
                lambda: sqs.get_queue_attributes(QueueUrl=id), "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"),
            "AWS::Lambda::Function": lambda id: missing(lambda: lam.get_function(FunctionName=id), "ResourceNotFoundException"),
            "AWS::Lambda::EventSourceMapping": lambda id: missing(
                lambda: lam.get_event_source_mapping(UUID=id), "ResourceNotFoundException"),
            "AWS::IAM::Role": lambda id: missing(lambda: iam.get_role(RoleName=id), "NoSuchEntity"),
            "AWS::Logs::LogGroup": lambda id: id not in {
                g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=id)["logGroups"]},
            "AWS::Events::Rule": lambda id: missing(
                lambda: events.describe_rule(Name=id.split("|")[-1]), "ResourceNotFoundException"),
            "AWS::ApiGatewayV2::Api": lambda id: missing(lambda: apis.get_api(ApiId=id), "NotFoundException"),
            "AWS::CloudWatch::Alarm": lambda id: not cloudwatch.describe_alarms(AlarmNames=[id])["MetricAlarms"],
            "AWS::S3::BucketPolicy": lambda _: missing(lambda: s3.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy"),
            "AWS::DynamoDB::Table": lambda id: missing(lambda: dynamodb.describe_table(TableName=id), "ResourceNotFoundException"),
            "AWS::IAM::ManagedPolicy": lambda id: missing(lambda: iam.get_policy(PolicyArn=id), "NoSuchEntity"),
            "AWS::SNS::Topic": lambda id: missing(lambda: sns.get_topic_attributes(TopicArn=id), "NotFound"),
            "AWS::CloudWatch::Dashboard": lambda id: missing(
                lambda: cloudwatch.get_dashboard(DashboardName=id), "ResourceNotFound", "ResourceNotFoundException"),
        }
        # These live inside a resource above and go with it.
        inside = {
            "AWS::Lambda::Permission", "AWS::SQS::QueuePolicy", "AWS::ApiGatewayV2::Stage",
            "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration",
        }
        checked = []
        for logical, resource in sorted(resources.items()):
            kind, physical = resource["ResourceType"], resource["PhysicalResourceId"]
            if logical == "DataBucket" or kind in inside:
                continue
            self.assertIn(kind, gone, f"no check for {logical} of type {kind}: add one")
            checked.append((f"{logical} ({kind} {physical})", lambda kind=kind, physical=physical: gone[kind](physical)))
        # Each check must see its resource before the delete, or it proves nothing after it.
        self.assertEqual([name for name, is_gone in checked if is_gone()], [], "missing before sam delete")
        run(["sam", "delete", "--stack-name", self.stack, "--no-prompts", "--region", REGION], env=self.env)
        self.assertEqual([name for name, is_gone in checked if not is_gone()], [], "left after sam delete")
        # Retained: the data bucket with the output of every trip.
        self.assertIn(self.api_trip, self.trips_in_output())


if __name__ == "__main__":
    unittest.main()
