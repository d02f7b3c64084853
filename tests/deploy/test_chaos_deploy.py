"""The proof on the local cloud: the deployed route on MiniStack, with chaos switched on in every
queue reader through the template (Stage=test, Chaos=...), rides 20,000+ generated records with
bad rows, one object big enough to need many invocations under a 3 s StopTimeout, and one object
no retry can read. Every record is then accounted for by its id in the bucket, the quarantine
queue and the dead-letter queues.

Run by ./infra/test after the release Lambda build; on its own:

    ./infra/.venv/bin/python -m unittest discover -s tests/deploy -p test_chaos_deploy.py -v
"""

import collections
import json
import os
import tempfile
import time
import unittest
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

from test_sam_deploy import REGION, ROOT, endpoint, poll, run

RECORDS = 20_000
BAD_EVERY = 500
# One object of its own needs many invocations: with a deadline margin as long as the timeout,
# extract reads one chunk of 512 rows per invocation and sends the rest on as a continuation.
BIG_RECORDS = 6_000
CHAOS = "all=5%,slow-read=5%@20ms"
ROUTE = f"chaos-{uuid.uuid4().hex[:8]}"
PARAMETERS = {
    "RouteName": ROUTE,
    "Stage": "test",
    "Chaos": CHAOS,
    "ChaosSeed": "7",
    "ScheduleExpression": "rate(1 day)",
    "StopTimeout": "3",
    "QueueVisibilityTimeout": "19",
    "DeadlineMarginMs": "3000",
    # No more buses per invocation than start at once: none is handed back unstarted.
    "TransformBatchSize": "4",
    "LoadBatchSize": "4",
    "MaxReceiveCount": "10",
    "BusByteBudget": "16384",
    "MetricsMode": "cloudwatch",
}
DUPLICATE_HEADER = "input/duplicate-header.csv:1: header names column `a` twice"


class ChaosOnTheLocalCloud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url = endpoint()
        cls.env = {
            **os.environ,
            "AWS_ENDPOINT_URL": cls.url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "SAM_CLI_TELEMETRY": "0",
            "PATH": f"{ROOT / 'infra/.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        cls.env.pop("AWS_PROFILE", None)
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        config = Config(retries={"max_attempts": 2})
        cls.client = staticmethod(lambda service: session.client(service, endpoint_url=cls.url, config=config))
        cls.stack = f"busline-chaos-{uuid.uuid4().hex[:8]}"
        cls.artifacts = f"{cls.stack}-artifacts"
        cls.client("s3").create_bucket(Bucket=cls.artifacts)
        bus = ["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--"]
        run(bus + ["lint", "template.yaml"] + [a for n, v in PARAMETERS.items() for a in ("--parameter", f"{n}={v}")],
            env=cls.env)
        # The deploy proof's `sam build` made .aws-sam; build again only when it is missing.
        if not (ROOT / ".aws-sam/build/template.yaml").exists():
            run(["sam", "build"], env=cls.env)
        started = time.monotonic()
        run(["sam", "deploy", "--stack-name", cls.stack, "--s3-bucket", cls.artifacts,
             "--no-confirm-changeset", "--no-fail-on-empty-changeset",
             "--parameter-overrides", *(f'{n}="{v}"' for n, v in PARAMETERS.items())], env=cls.env)
        print(f"\nsam deploy of {cls.stack}: {time.monotonic() - started:.1f} s", flush=True)
        listed = run(["sam", "list", "stack-outputs", "--stack-name", cls.stack, "--output", "json"], env=cls.env)
        cls.outputs = {o["OutputKey"]: o["OutputValue"] for o in json.loads(listed.stdout)}
        cls.bucket = cls.outputs["DataBucketName"]

        cls.work = tempfile.TemporaryDirectory()
        data = Path(cls.work.name)
        run(bus + ["gen", "--records", str(RECORDS - BIG_RECORDS), "--files", "8",
                   "--bad-every", str(BAD_EVERY), "--seed", "5", "--out", str(data / "many")])
        run(bus + ["gen", "--records", str(BIG_RECORDS), "--files", "1", "--ndjson",
                   "--bad-every", str(BAD_EVERY), "--seed", "6", "--out", str(data / "big")])
        s3 = cls.client("s3")
        cls.expected_good, cls.expected_bad = set(), set()
        for path in sorted(data.rglob("part-*")):
            key = f"input/{path.parent.name}-{path.name}"
            s3.put_object(Bucket=cls.bucket, Key=key, Body=path.read_bytes())
            good, bad = records_of(path)
            cls.expected_good |= good
            cls.expected_bad |= bad
        s3.put_object(Bucket=cls.bucket, Key="input/duplicate-header.csv", Body=b"a,a\n1,2\n")

    @classmethod
    def tearDownClass(cls):
        cls.work.cleanup()
        cloudformation = cls.client("cloudformation")
        stacks = cloudformation.list_stacks(StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])
        if any(s["StackName"] == cls.stack for s in stacks["StackSummaries"]):
            run(["sam", "delete", "--stack-name", cls.stack, "--no-prompts", "--region", REGION], env=cls.env)

    def drain(self, queue_url):
        """Every message of a queue, received and deleted, with its attributes."""
        sqs, messages = self.client("sqs"), []
        while True:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                      MessageAttributeNames=["All"]).get("Messages", [])
            if not got:
                return messages
            for message in got:
                messages.append(message)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def output_names(self, trip):
        s3 = self.client("s3")
        names = collections.Counter()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"output/trip={trip}/")
        for page in pages:
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read().decode()
                names.update(json.loads(line)["Name"] for line in body.splitlines())
        return names

    def test_every_record_is_accounted_for_under_chaos_and_deadlines(self):
        trip = f"chaos-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        # A direct invoke of the depot starts the trip (the depot itself runs without chaos).
        invoked = self.client("lambda").invoke(
            FunctionName=self.resource("DepotFunction"), Payload=json.dumps({"trip_id": trip}).encode())
        answer = json.loads(invoked["Payload"].read())
        self.assertEqual(answer.get("trip_id"), trip, answer)

        rejections, dead = {}, []

        def settled():
            names = self.output_names(trip)
            for message in self.drain(self.outputs["QuarantineQueueUrl"]):
                for rejection in json.loads(message["Body"])["passengers"]:
                    rejections.setdefault(rejection["id"], rejection)
            for name in ("Extract", "Transform", "Load"):
                dead.extend(self.drain(self.outputs[f"{name}DeadLetterQueueUrl"]))
            missing = len(self.expected_good - set(names)) + len(self.expected_bad) - len(rejections)
            return names if missing == 0 else None

        names = poll("every record in the output or quarantine", settled, timeout_s=600, every_s=5)
        elapsed = time.monotonic() - started
        duplicated = {name: n for name, n in names.items() if n > 1}
        self.assertEqual(duplicated, {}, "each record once in the bucket")
        self.assertEqual(set(names), self.expected_good)
        raw_names = {r["data"]["raw"][0] if isinstance(r["data"]["raw"], list) else json_name(r["data"]["raw"])
                     for r in rejections.values()}
        self.assertEqual(raw_names, self.expected_bad)
        reasons = [m.get("MessageAttributes", {}).get("busline.reason", {}).get("StringValue") for m in dead]
        self.assertIn(DUPLICATE_HEADER, reasons, dead)
        self.assertTrue(all(reasons), f"every dead letter has its reason: {reasons}")
        continued = self.metric_sum("extract", "Continued")
        print(f"chaos trip of {RECORDS} records: {elapsed:.0f} s; extract continued {continued} times; "
              f"{len(dead)} dead letters; {len(rejections)} rejects", flush=True)
        self.assertGreater(continued, BIG_RECORDS // 512 // 2, "the big object took many invocations")

    def resource(self, logical):
        resources = self.client("cloudformation").describe_stack_resources(StackName=self.stack)["StackResources"]
        return next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == logical)

    def metric_sum(self, stop, metric):
        now = time.time()
        stats = self.client("cloudwatch").get_metric_statistics(
            Namespace="busline", MetricName=metric, StartTime=now - 3600, EndTime=now + 60, Period=3600,
            Statistics=["Sum"], Dimensions=[{"Name": "Route", "Value": ROUTE}, {"Name": "Stop", "Value": stop}])
        return int(sum(p["Sum"] for p in stats["Datapoints"]))


def records_of(path):
    """The generated Names of a file: (good, bad), a bad row being one field short."""
    good, bad = set(), set()
    text = path.read_text()
    if path.suffix == ".csv":
        for line in text.splitlines()[1:]:
            fields = line.split(",", 2)
            (good if len(fields) == 3 else bad).add(fields[0])
    else:
        for line in text.splitlines():
            name = json_name(line)
            try:
                json.loads(line)
                good.add(name)
            except ValueError:
                bad.add(name)
    return good, bad


def json_name(raw):
    """The Name in a (possibly broken) NDJSON line."""
    return raw.split('"Name":"', 1)[1].split('"', 1)[0]


if __name__ == "__main__":
    unittest.main()
