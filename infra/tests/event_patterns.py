#!/usr/bin/env python3
"""Proves each EventBridge rule of infra/template.yaml matches exactly the sample events it should.

The patterns are read from the template itself (every `EventBridgeRule` event of every function), created as
rules on the local stack's EventBridge (moto) with an SQS queue as target, and every sample in events/*.json
(events/invalid/ excluded) is sent with PutEvents. Each rule's queue must then hold exactly the samples the
table below names, and no other. The matching is EventBridge's pattern engine (moto's implementation of it),
not a matcher written here. It also checks what the template promises beyond patterns: every rule filters the
deploying account (single account) or listens on the hub bus without that filter (hub mode), and `DryRun`
defaults to true. And the spoke stack (infra/spoke.yaml): its forwarding rules, created the same way, must
carry every sample any function's rule matches to the hub.

Run by scripts/test with the moto venv's python, after local_stack_start exported AWS_ENDPOINT_URL:
    source scripts/local-stack.sh && local_stack_start && .venv/bin/python infra/tests/event_patterns.py
"""

import copy
import json
import os
import sys
import urllib.parse
from pathlib import Path

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
SPOKE = ROOT / "infra" / "spoke.yaml"
EVENTS = ROOT / "events"

# The samples that push, delete or tag images the way tag-guard and lifecycle receive them.
PUSHES = [
    "ecr-image-push.json",
    "ecr-image-push-nonconforming.json",
    "ecr-image-push-digest-only.json",
    "ecr-image-push-index.json",
    "ecr-image-push-protected-move.json",
    "ecr-image-push-dev.json",
    "ecr-image-push-index.json~docker-list",
]

# Samples derived from a real-shaped sample by changing one field, for cases no file in events/ covers.
# name -> (sample file, detail path, new value; None deletes the key)
VARIANTS = {
    "ecr-image-delete.json~by-digest": ("ecr-image-delete.json", ["image-tag"], None),
    "ecr-image-scan-failed.json~unsupported": ("ecr-image-scan-failed.json", ["scan-status"], "UNSUPPORTED_IMAGE"),
    "inspector2-scan.json~unsupported": ("inspector2-scan.json", ["scan-status"], "UNSUPPORTED_IMAGE"),
    "inspector2-coverage.json~active": ("inspector2-coverage.json", ["scanStatus", "statusCodeValue"], "ACTIVE"),
    "ecr-pull-through-cache-failed.json~in-progress": (
        "ecr-pull-through-cache-failed.json", ["sync-status"], "IN_PROGRESS"),
    "cloudtrail-create-repository.json~other-service": (
        "cloudtrail-create-repository.json", ["eventSource"], "ecr-public.amazonaws.com"),
    "ecr-image-push-index.json~docker-list": (
        "ecr-image-push-index.json", ["manifest-media-type"], "application/vnd.docker.distribution.manifest.list.v2+json"),
    "ecr-image-push-index.json~failed": ("ecr-image-push-index.json", ["result"], "FAILURE"),
}

# rule (function logical id . event name) -> every sample it must match; it must match no other.
EXPECTED = {
    "TagGuardFunction.ImageAction": PUSHES + ["ecr-image-delete.json", "ecr-image-delete.json~by-digest"],
    "TagGuardFunction.CreateRepository": ["cloudtrail-create-repository.json"],
    "ScanGateFunction.ReferrerAction": ["ecr-referrer-restore.json"],
    "ScanGateFunction.IndexPush": ["ecr-image-push-index.json", "ecr-image-push-index.json~docker-list"],
    "ScanGateFunction.BasicScan": [
        "ecr-image-scan.json",
        "ecr-image-scan-clean.json",
        "ecr-image-scan-failed.json",
        "ecr-image-scan-failed.json~unsupported",
    ],
    "ScanGateFunction.InspectorScan": ["inspector2-scan.json", "inspector2-scan.json~unsupported"],
    "ScanGateFunction.InspectorFinding": [
        "inspector2-finding.json",
        "inspector2-finding-closed.json",
        "inspector2-finding-ec2.json",  # scan-gate skips it: see the rule's comment in the template
    ],
    "LifecycleFunction.CreateRepository": ["cloudtrail-create-repository.json"],
    "LifecycleFunction.ImagePush": PUSHES,
    "NotifyFunction.Replication": ["ecr-replication-success.json", "ecr-replication-failed.json"],
    "NotifyFunction.PullThroughCacheFailed": [
        "ecr-pull-through-cache-failed.json",
        "ecr-pull-through-cache-failed.json~in-progress",
    ],
    "NotifyFunction.ScanFailed": ["ecr-image-scan-failed.json", "ecr-image-scan-failed.json~unsupported"],
    "NotifyFunction.InspectorScanFailed": ["inspector2-scan.json~unsupported"],
    "NotifyFunction.ScanningStopped": ["inspector2-coverage.json"],
    "NotifyFunction.ScanFrequencyChanged": ["ecr-scan-resource-change.json"],
    "NotifyFunction.LifecycleExpired": ["cloudtrail-lifecycle-policy-execution.json"],
    "NotifyFunction.TagDeleted": ["ecr-image-delete.json"],
}

# Samples no pattern rule may match: schedules reach their function through a schedule rule (no pattern),
# and the rest is what no function acts on, or what a rule filters out before any invocation.
MATCHED_BY_NONE = [
    "ecr-image-push-index.json~failed",
    "scheduled-rule.json",
    "scheduler.json",
    "scheduler-repositories.json",
    "ecr-image-push-failed.json",
    "ecr-image-archive.json",
    "ecr-image-restore.json",
    "ecr-pull-through-cache-success.json",
    "cloudtrail-create-repository-failed.json",
    "cloudtrail-delete-repository.json",
    "cloudtrail-put-image-tag-mutability.json",
    "unknown-detail-type.json",
    "other-source.json",
    "inspector2-coverage.json~active",
    "cloudtrail-create-repository.json~other-service",
]

# Functions with a scheduled sweep, and the parameter its schedule must come from.
SCHEDULES = {
    "TagGuardFunction.Sweep": "TagGuardSweepSchedule",
    "LifecycleFunction.Sweep": "LifecycleSweepSchedule",
    "AuditFunction.Audit": "AuditSchedule",
}

MARKER = "urn:ecr-warden:sample:"

# The local stack's account: `!Ref AWS::AccountId` in a pattern stands for it (moto stamps it on every event).
ACCOUNT = "123456789012"


NO_VALUE = {"Ref": "AWS::NoValue"}

# A rule's account filter: the deploying account, except on the hub bus (hub mode), where it has none.
ACCOUNT_FILTER = {"Fn::If": ["IsHub", NO_VALUE, [{"Ref": "AWS::AccountId"}]]}


def deployed(pattern, hub=False):
    """The pattern as CloudFormation deploys it into the local stack's account, single-account or as a hub."""
    if pattern == {"Ref": "AWS::AccountId"}:
        return ACCOUNT
    if isinstance(pattern, dict) and list(pattern) == ["Fn::If"]:
        condition, if_true, if_false = pattern["Fn::If"]
        if condition != "IsHub":
            raise SystemExit(f"unexpected condition {condition} in a pattern; add it to this test")
        return deployed(if_true if hub else if_false, hub)
    if isinstance(pattern, dict):
        resolved = {key: deployed(value, hub) for key, value in pattern.items()}
        return {key: value for key, value in resolved.items() if value != NO_VALUE}
    if isinstance(pattern, list):
        return [deployed(value, hub) for value in pattern]
    return pattern


def spoke_rules():
    """The spoke stack's forwarding rules: logical id -> pattern."""
    spoke = yaml.load(SPOKE.read_text(), Loader=TemplateLoader)
    return {f"Spoke.{logical_id}": resource["Properties"]["EventPattern"]
            for logical_id, resource in spoke["Resources"].items() if resource["Type"] == "AWS::Events::Rule"}


class TemplateLoader(yaml.SafeLoader):
    """YAML loader for CloudFormation: `!Ref X` becomes {"Ref": X}, `!GetAtt A.B` {"Fn::GetAtt": [A, B]}, ..."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_rules(template):
    patterns, schedules = {}, {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event_name, event in (resource["Properties"].get("Events") or {}).items():
            key = f"{logical_id}.{event_name}"
            if event["Type"] == "EventBridgeRule":
                patterns[key] = event["Properties"]["Pattern"]
            elif event["Type"] == "Schedule":
                schedules[key] = event["Properties"]["Schedule"]
            else:
                raise SystemExit(f"{key}: unexpected event type {event['Type']}; add it to this test")
    return patterns, schedules


def load_samples():
    samples = {path.name: json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json"))}
    for name, (base, path, value) in VARIANTS.items():
        event = copy.deepcopy(samples[base])
        parent = event["detail"]
        for key in path[:-1]:
            parent = parent[key]
        if value is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        samples[name] = event
    return samples


def mentions_key(pattern, key):
    if isinstance(pattern, dict):
        return key in pattern or any(mentions_key(v, key) for v in pattern.values())
    if isinstance(pattern, list):
        return any(mentions_key(v, key) for v in pattern)
    return False


def main():
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if urllib.parse.urlparse(endpoint).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("AWS_ENDPOINT_URL must point at the local stack (source scripts/local-stack.sh; "
                         "local_stack_start): this test creates rules and queues")

    template = yaml.load(TEMPLATE.read_text(), Loader=TemplateLoader)
    patterns, schedules = load_rules(template)
    samples = load_samples()

    # The table and the template must describe the same rules, and every sample must be accounted for.
    problems = []
    if set(patterns) != set(EXPECTED):
        problems.append(f"rules in the template but not in EXPECTED: {sorted(set(patterns) - set(EXPECTED))}; "
                        f"in EXPECTED but not in the template: {sorted(set(EXPECTED) - set(patterns))}")
    for key, parameter in SCHEDULES.items():
        if schedules.get(key) != {"Ref": parameter}:
            problems.append(f"{key}: schedule should be !Ref {parameter}, is {schedules.get(key)}")
    if set(schedules) != set(SCHEDULES):
        problems.append(f"schedules {sorted(schedules)} differ from {sorted(SCHEDULES)}")
    expected_somewhere = {s for names in EXPECTED.values() for s in names}
    for name in sorted(set(samples) - expected_somewhere - set(MATCHED_BY_NONE)):
        problems.append(f"sample {name} is in no expectation: add it to a rule's list or to MATCHED_BY_NONE")
    for name in sorted((expected_somewhere | set(MATCHED_BY_NONE)) - set(samples)):
        problems.append(f"expectation names {name}, which is not a sample")
    for name in sorted(expected_somewhere & set(MATCHED_BY_NONE)):
        problems.append(f"{name} is both expected by a rule and in MATCHED_BY_NONE")
    # The marker travels in `resources`; it cannot change a result unless a pattern looks at `resources`.
    for key, pattern in patterns.items():
        if mentions_key(pattern, "resources"):
            problems.append(f"{key}: the pattern uses `resources`; change how this test marks samples")
        # Events of other accounts never reach a function through its rules on the default bus; on the hub bus
        # (hub mode) the bus policy and the functions' allow-list decide, and the pattern is otherwise the same.
        if pattern.get("account") != ACCOUNT_FILTER:
            problems.append(f"{key}: the pattern must filter `account: !If [IsHub, !Ref AWS::NoValue, "
                            f"[!Ref AWS::AccountId]]`")
        single, hub = deployed(pattern), deployed(pattern, hub=True)
        if "account" in hub or {k: v for k, v in single.items() if k != "account"} != hub:
            problems.append(f"{key}: in hub mode the pattern must be the same without `account`: {hub}")
    # A first deploy changes nothing until someone says so (issue: safe by default).
    dry_run = template["Parameters"]["DryRun"]
    if dry_run.get("Default") != "true":
        problems.append(f"DryRun must default to \"true\" (a first deploy observes), is {dry_run.get('Default')!r}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(1)

    events = boto3.client("events")
    sqs = boto3.client("sqs")
    prefix = f"pattern-test-{os.getpid()}"
    created = []  # (rule name, queue url)
    try:
        spoke = spoke_rules()
        for index, (key, pattern) in enumerate(sorted({**patterns, **spoke}.items())):
            name = f"{prefix}-{index}"
            queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"]
            created.append((name, queue_url))
            events.put_rule(Name=name, EventPattern=json.dumps(deployed(pattern)), State="ENABLED")
            events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
        rule_of = {name: key for (name, _), key in zip(created, sorted({**patterns, **spoke}))}

        entries = []
        for name, event in samples.items():
            detail = event.get("detail", {})
            entries.append({
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(detail),
                "Resources": list(event.get("resources", [])) + [MARKER + name],
            })
        for start in range(0, len(entries), 10):
            answer = events.put_events(Entries=entries[start:start + 10])
            if answer["FailedEntryCount"]:
                raise SystemExit(f"put_events rejected entries: {answer['Entries']}")

        matched = {}
        for name, queue_url in created:
            got = []
            while True:
                messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    resources = json.loads(message["Body"]).get("resources", [])
                    got += [r[len(MARKER):] for r in resources if r.startswith(MARKER)]
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            matched[rule_of[name]] = sorted(got)
    finally:
        for name, queue_url in created:
            events.remove_targets(Rule=name, Ids=["queue"])
            events.delete_rule(Name=name)
            sqs.delete_queue(QueueUrl=queue_url)

    passed = failed = 0
    for key in sorted(EXPECTED):
        want, got = sorted(EXPECTED[key]), matched[key]
        if want == got:
            passed += 1
            print(f"ok   {key}: {len(got)} samples")
        else:
            failed += 1
            print(f"FAIL {key}\n       missing:    {sorted(set(want) - set(got))}\n"
                  f"       unexpected: {sorted(set(got) - set(want))}\n       duplicates: "
                  f"{sorted(n for n in set(got) if got.count(n) > 1)}")
    unmatched = sorted(set(samples) - {s for key in patterns for s in matched[key]})
    if unmatched != sorted(MATCHED_BY_NONE):
        failed += 1
        print(f"FAIL matched by no rule: {unmatched}, expected {sorted(MATCHED_BY_NONE)}")
    else:
        passed += 1
        print(f"ok   {len(unmatched)} samples matched by no rule")
    # What any function acts on, a member account's spoke forwards to the hub.
    forwarded = {s for key in spoke for s in matched[key]}
    not_forwarded = sorted(expected_somewhere - forwarded)
    if not_forwarded:
        failed += 1
        print(f"FAIL the spoke forwards none of: {not_forwarded}")
    else:
        passed += 1
        print(f"ok   the spoke forwards all {len(expected_somewhere)} samples the functions' rules match")
    print(f"patterns: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
