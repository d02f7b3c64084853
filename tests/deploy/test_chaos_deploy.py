"""The proof on the local cloud: the deployed route on MiniStack, with chaos switched on in every
queue reader through the template (Stage=test, Chaos=...), rides 20,000+ generated records with
bad rows in objects big enough to need many invocations under a 3 s StopTimeout (each object
also split into ranged tickets, read by ranged GETs side by side), and one object
no retry can read. Every record is then accounted for by its id in the bucket's output and
quarantine files and the dead-letter queues; the trip completes with failures, and once the object is fixed
and the dead letters are redriven with `bus dlq redrive`, completes cleanly.

Run by ./infra/test after the release Lambda build; on its own:

    ./infra/.venv/bin/python -m unittest discover -s tests/deploy -p test_chaos_deploy.py -v
"""

import collections
import json
import re
import subprocess
import tempfile
import time
import unittest
import uuid
from pathlib import Path

from test_sam_deploy import Deployment, poll, quarantine_files, run

RECORDS = 20_000
FILES = 4
BAD_EVERY = 500
# With a deadline margin as long as the timeout, extract reads one chunk of 512 rows per
# invocation and sends the rest of the object on as a continuation: each object of 5,000
# records takes ten invocations.
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
    # Each object (about 200 KB) is cut into three or four ranges.
    "SplitSize": "65536",
}
DUPLICATE_HEADER = "input/duplicate-header.csv:1: header names column `a` twice"
# What the operator puts in its place before the redrive.
FIXED_NAME = "fixed-after-redrive"
FIXED = f'Name,HEX,RGB\n{FIXED_NAME},#010203,"(1, 2, 3)"\n'.encode()


class ChaosOnTheLocalCloud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.deployment = Deployment("chaos", PARAMETERS)
        cls.client = staticmethod(cls.deployment.client)
        cls.stack, cls.outputs = cls.deployment.stack, cls.deployment.outputs
        bus = ["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--"]
        cls.bucket = cls.outputs["DataBucketName"]

        cls.work = tempfile.TemporaryDirectory()
        data = Path(cls.work.name)
        run(bus + ["gen", "--records", str(RECORDS), "--files", str(FILES),
                   "--bad-every", str(BAD_EVERY), "--seed", "5", "--out", str(data)])
        s3 = cls.client("s3")
        cls.expected_good, cls.expected_bad = set(), set()
        for path in sorted(data.rglob("part-*")):
            key = f"input/{path.name}"
            s3.put_object(Bucket=cls.bucket, Key=key, Body=path.read_bytes())
            good, bad = records_of(path)
            cls.expected_good |= good
            cls.expected_bad |= bad
        s3.put_object(Bucket=cls.bucket, Key="input/duplicate-header.csv", Body=b"a,a\n1,2\n")

    @classmethod
    def tearDownClass(cls):
        cls.work.cleanup()
        cls.deployment.delete_if_left()

    def dead_letters(self, queue_url):
        """Every message of a dead-letter queue, read and handed back (a redrive needs them)."""
        sqs, messages = self.client("sqs"), {}
        while got := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                         VisibilityTimeout=30, MessageAttributeNames=["All"]).get("Messages", []):
            messages.update((m["MessageId"], m) for m in got)
        for message in messages.values():
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        return messages

    def output_names(self, trip):
        s3 = self.client("s3")
        names = collections.Counter()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"output/trip={trip}/")
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/_SUCCESS"):
                    continue
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

        rejections, dead = {}, {}

        def settled():
            names = self.output_names(trip)
            for rejection in quarantine_files(self.client("s3"), self.bucket, f"quarantine/trip={trip}/"):
                rejections.setdefault(rejection["id"], rejection)
            for name in ("Extract", "Transform", "Load"):
                dead.update(self.dead_letters(self.outputs[f"{name}DeadLetterQueueUrl"]))
            missing = len(self.expected_good - set(names)) + len(self.expected_bad) - len(rejections)
            return names if missing == 0 else None

        names = poll("every record in the output or quarantine", settled, timeout_s=600, every_s=5)
        elapsed = time.monotonic() - started
        duplicated = {name: n for name, n in names.items() if n > 1}
        self.assertEqual(duplicated, {}, "each record once in the bucket")
        self.assertEqual(set(names), self.expected_good)
        raw_names = {r["data"]["raw"][0] for r in rejections.values()}
        self.assertEqual(raw_names, self.expected_bad)
        reasons = [m.get("MessageAttributes", {}).get("busline.reason", {}).get("StringValue") for m in dead.values()]
        self.assertIn(DUPLICATE_HEADER, reasons, dead)
        self.assertTrue(all(reasons), f"every dead letter has its reason: {reasons}")
        # The ledger saw the same: the trip completed with failures (the dead-lettered object),
        # load's count is the output's, extract's rejects are the quarantine's.
        s3, key = self.client("s3"), f"output/trip={trip}/_SUCCESS"

        def manifest():
            try:
                return json.loads(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                return None

        written = poll(f"{key}", manifest, timeout_s=120, every_s=5)
        self.assertEqual(written["state"], "completed_with_failures")
        # At least once: a load bus dead-lettered on its last receive may have written its
        # object on an earlier one, so its records can be in the output and counted dead-lettered.
        load = written["stops"]["load"]
        self.assertLessEqual(load["dropped_off"], sum(names.values()), load)
        self.assertLessEqual(sum(names.values()), load["dropped_off"] + load["dead_lettered"], load)
        self.assertEqual(written["rejected"], len(rejections))
        self.assertGreaterEqual(written["dead_lettered"], 1)
        continued = self.metric_sum("extract", "Continued")
        faults = self.injected_faults()
        print(f"chaos trip of {RECORDS} records: {elapsed:.0f} s; extract continued {continued} times; "
              f"dead letters by reason: {dict(collections.Counter(reasons))}; {len(rejections)} rejects; "
              f"faults injected: {faults}", flush=True)
        self.assertTrue(faults, "the functions ran with chaos on")
        self.assertGreater(continued, FILES * 5, "each object took several invocations")
        self.fix_and_redrive(trip, written, names)

    def fix_and_redrive(self, trip, failed, names):
        """The operator's way out: fix the object that could not be read, redrive every stop's
        dead letters with `bus dlq redrive`, and the trip completes again, cleanly, with the
        fixed record in its output."""
        s3, key = self.client("s3"), f"output/trip={trip}/_SUCCESS"
        # The outage is over (chaos off, so the redriven buses cannot fail again) and the
        # object is fixed.
        calm = ['Chaos=""' if arg.startswith("Chaos=") else arg for arg in self.deployment.deploy_argv]
        run(calm, env=self.deployment.env)
        s3.put_object(Bucket=self.bucket, Key="input/duplicate-header.csv", Body=FIXED)
        bus = ["cargo", "run", "--quiet", "--locked", "-p", "busline-cli", "--"]
        moved = 0
        for stop in ("extract", "transform", "load"):
            report = json.loads(run(bus + ["dlq", "redrive", stop, "--stack-name", self.stack, "--json"],
                                    env=self.deployment.env).stdout)
            self.assertEqual(report["failed"], [], report)
            moved += report["moved"]
        self.assertGreaterEqual(moved, 1)

        def completed_again():
            manifest = json.loads(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            return manifest if manifest["state"] == "completed" else None

        try:
            manifest = poll(f"{key} to say completed after the redrive", completed_again, timeout_s=120, every_s=5)
        except AssertionError:
            table = self.outputs["TripLedgerTableName"]
            for args in (["trip", trip, "--ledger-table", table], ["dlq", "list", "--stack-name", self.stack]):
                print(subprocess.run(bus + args, env=self.deployment.env, capture_output=True, text=True), flush=True)
            raise
        self.assertEqual((manifest["dead_lettered"], manifest["rejected"]), (0, failed["rejected"]))
        fixed = self.output_names(trip)
        self.assertEqual(fixed - names, collections.Counter({FIXED_NAME: 1}))
        self.assertEqual(manifest["stops"]["load"]["dropped_off"], sum(fixed.values()))

    def injected_faults(self):
        """{fault: count} from the queue readers' log lines, one per injected fault."""
        logs, counts = self.client("logs"), collections.Counter()
        for stop in ("Extract", "Transform", "Load"):
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=self.resource(f"{stop}LogGroup"), filterPattern='"chaos injected a fault"')
            for page in pages:
                for event in page["events"]:
                    # The filter matches words, so other chaos lines come too; only faults count.
                    found = re.search(r'"fault":\s*"([a-z0-9-]+)"', event["message"])
                    if found:
                        counts[found.group(1)] += 1
        return dict(sorted(counts.items()))

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
    """The generated Names of a CSV file: (good, bad), a bad row being one field short."""
    good, bad = set(), set()
    for line in path.read_text().splitlines()[1:]:
        fields = line.split(",", 2)
        (good if len(fields) == 3 else bad).add(fields[0])
    return good, bad


if __name__ == "__main__":
    unittest.main()
