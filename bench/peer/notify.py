"""notify in Python / boto3, the benchmark peer of functions/notify (Lambda handler `notify.handler`).

Faithful for what bench/run measures, with the same decision and the same AWS calls per case as the Rust
function (functions/notify/src/lib.rs, shared/src/notify/events.rs):
- `ECR Replication Action`: FAILED (any result but SUCCESS) is a `replication-failed` warning; SUCCESS only for
  repositories matching `notify.replication-successes` (`replicated`, info), otherwise skipped.
- `ECR Pull Through Cache Action` with a sync status other than SUCCESS: `pull-through-cache-failed`.
- `ECR Image Scan` / `Inspector2 Scan` with a failed or unsupported status: `scan-failed`; complete or pending
  scans are skipped.
- `ECR Image Action` DELETE of a tag the repository's class protects: `protected-tag-deleted` (critical).
- Each notification is claimed in the ledger (DynamoDB PutItem, `NOTIFY#<event id>` / kind) and published to
  SNS in the `standard` format (`MessageStructure=json`: text for email, the JSON schema for programs), both
  through warden_peer.send; a claim already taken (a replayed event) is `already-notified`, no Publish.

Left out: Inspector2 Coverage, ECR Scan Resource Change and CloudTrail PolicyExecutionEvent (answered `skipped`
here, unlike the Rust function), notification routes (`[[notify.route]]`, WARDEN_TOPICS) and formats other
than `standard`, SNS size limits and list truncation, the claim's token (the Rust claim carries one so an SDK
retry of a lost answer recognises its own write; one PutItem either way), the JSON schema's omission of absent
fields (here `null`), event validation beyond the fields used, and Lambda error classification.
"""

import tomllib

import warden_peer as w

FUNCTION = "notify"
with open(w.POLICY_FILE, "rb") as policy:
    NOTIFY_POLICY = tomllib.load(policy).get("notify", {})
REPLICATION_SUCCESSES = [w.Pattern(p) for p in NOTIFY_POLICY.get("replication-successes", [])]


def handler(event, context=None):
    outcome, before = w.start(FUNCTION, event)
    detail = event.get("detail") or {}
    try:
        kind, severity, result, reasons = draft(event, detail, outcome)
    except Skip as why:
        return w.finish(w.skipped(outcome, str(why)), before)
    cls, _ = w.managed_class(outcome["repository"]) if outcome.get("repository") else (None, None)
    outcome["class"] = cls.name if cls else None
    outcome["reasons"] = list(reasons)
    n = w.notification(FUNCTION, event, outcome, kind, result, reasons, severity)
    if not w.TOPIC_ARN:
        outcome["decision"] = kind
        outcome["reasons"].append("no topic configured: the notification is only logged")
        return w.finish(outcome, before)
    outcome["notified"] = w.send(n)
    outcome["decision"] = kind if outcome["notified"] else "already-notified"
    return w.finish(outcome, before)


class Skip(Exception):
    pass


def repository_name(name):
    """A repository name, or the name in a repository ARN."""
    return name.split(":repository/")[-1]


def image(outcome, repository, digest, tags):
    outcome.update(repository=repository, digest=digest, tags=list(tags))


def draft(event, detail, outcome):
    """(kind, severity, outcome word, reasons) of the notification the event deserves; raises Skip otherwise."""
    source, detail_type = event.get("source"), event.get("detail-type")
    region = event.get("region") or "this region"
    if source == "aws.ecr" and detail_type == "ECR Replication Action":
        repository, digest = repository_name(detail["repository-name"]), detail["image-digest"]
        tag = detail.get("image-tag")
        outcome["repository"] = repository
        account, from_region = detail.get("source-account"), detail.get("source-region")
        origin = f" from {account} in {from_region}" if account and from_region else (
            f" from {from_region}" if from_region else "")
        what = digest + (f" ({tag})" if tag else "")
        if detail["result"] == "SUCCESS":
            if not w.any_match(REPLICATION_SUCCESSES, repository):
                raise Skip(f"successful replications into {repository} are not reported")
            image(outcome, repository, digest, [tag] if tag else [])
            return "replicated", "info", "replicated", [f"{what} replicated{origin} into {region}"]
        image(outcome, repository, digest, [tag] if tag else [])
        return "replication-failed", "warning", "failed", [
            f"replicating {what}{origin} into {region} ended with result {detail['result']}"]
    if source == "aws.ecr" and detail_type == "ECR Pull Through Cache Action":
        repository = repository_name(detail["repository-name"])
        outcome["repository"] = repository
        if detail["sync-status"] == "SUCCESS":
            raise Skip("pull-through cache sync succeeded")
        tag = detail.get("image-tag")
        reasons = [f"sync of {repository}{f':{tag}' if tag else ''} from "
                   f"{detail.get('upstream-registry-url') or 'the upstream registry'} (rule prefix "
                   f"`{detail.get('ecr-repository-prefix') or '?'}`) ended with {detail['sync-status']}"]
        if detail.get("failure-code"):
            reasons.append(f"{detail['failure-code']}: {detail.get('failure-reason') or 'no reason given'}")
        image(outcome, repository, detail.get("image-digest"), [tag] if tag else [])
        return "pull-through-cache-failed", "warning", "failed", reasons
    if (source, detail_type) in (("aws.ecr", "ECR Image Scan"), ("aws.inspector2", "Inspector2 Scan")):
        repository, status = repository_name(detail["repository-name"]), detail["scan-status"]
        outcome["repository"] = repository
        if status in ("COMPLETE", "ACTIVE", "INITIAL_SCAN_COMPLETE", "IN_PROGRESS", "PENDING"):
            raise Skip(f"scan status {status}")
        image(outcome, repository, detail.get("image-digest"), detail.get("image-tags", []))
        return "scan-failed", "warning", "not-scanned", [f"scan status {status}: the image has no usable scan results"]
    if source == "aws.ecr" and detail_type == "ECR Image Action" and detail.get("action-type") == "DELETE":
        repository, digest = repository_name(detail["repository-name"]), detail["image-digest"]
        tag = detail.get("image-tag")
        outcome.update(event="ECR Image Action DELETE", repository=repository)
        if tag is None:
            raise Skip("image deleted by digest: no tag involved")
        cls, _ = w.managed_class(repository)
        if not (cls and cls.tags and cls.is_protected(tag)):
            raise Skip(f"`{tag}` is not a protected tag")
        image(outcome, repository, digest, [tag])
        return "protected-tag-deleted", "critical", "deleted", [f"protected tag `{tag}` ({digest}) was deleted"]
    raise Skip(f"notify does not report `{source}` / `{detail_type}` events")
