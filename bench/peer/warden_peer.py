"""What tag-guard and scan-gate share, in Python / boto3: the policy (read from warden.toml with tomllib), ECR
wildcard and regex patterns, tag templates, the DynamoDB ledger, tag steps in ECR, and notifications (claimed
in the ledger, published to SNS). A benchmark peer of the Rust crate `warden`, not a product: see README.md.

Built once per process at import time (as a Python Lambda would at init): the policy, the boto3 clients, and
a counter of AWS calls per `Service.Operation` that every outcome reports, as the Rust outcomes do.
"""

import collections
import datetime
import json
import os
import re
import time
import tomllib
import uuid

import boto3
from botocore.exceptions import ClientError

POLICY_FILE = os.environ.get("WARDEN_POLICY_FILE") or os.path.join(os.path.dirname(__file__), "..", "..", "warden.toml")
LEDGER_TABLE = os.environ["WARDEN_LEDGER_TABLE"]
TOPIC_ARN = os.environ.get("WARDEN_TOPIC_ARN") or None
DRY_RUN = os.environ.get("WARDEN_DRY_RUN", "").strip().lower() in ("true", "1", "yes")
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]
MANIFEST_MEDIA_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v1+json",
]
NOTIFY_TTL_SECONDS = 7 * 24 * 3600

CALLS = collections.Counter()


def client(service):
    """A boto3 client (endpoint from AWS_ENDPOINT_URL) that counts its calls, once per operation like the Rust
    interceptor (botocore's retries happen after `before-call`)."""
    made = boto3.client(service)
    service_id = made.meta.service_model.service_id

    def count(model, **_):
        CALLS[f"{service_id}.{model.name}"] += 1

    made.meta.events.register("before-call", count)
    return made


def error_code(error):
    return error.response.get("Error", {}).get("Code", "")


# ---------------------------------------------------------------------------------------------------- policy

class Pattern:
    """`regex:<expr>` (anchored) or an ECR wildcard: `*` matches any run, the whole name must match."""

    def __init__(self, text):
        self.source = text
        self.regex = re.compile(text[len("regex:"):]) if text.startswith("regex:") else None
        self.parts = None if self.regex else text.split("*")

    def match(self, name):
        if self.regex:
            return self.regex.fullmatch(name) is not None
        parts = self.parts
        if len(parts) == 1:
            return name == parts[0]
        first, last = parts[0], parts[-1]
        if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
            return False
        at, end = len(first), len(name) - len(last)
        for part in parts[1:-1]:
            found = name.find(part, at, end)
            if found < 0:
                return False
            at = found + len(part)
        return True


def any_match(patterns, name):
    return any(p.match(name) for p in patterns)


class Template:
    """`quarantine-{digest12}`, `{tag}-approved`: rendered for an image, and recognised again."""

    PLACEHOLDERS = {"{tag}": "[A-Za-z0-9_.-]+", "{digest12}": "[0-9a-f]{12}", "{digest}": "[0-9a-f]{64}"}

    def __init__(self, source):
        self.source = source
        pattern = re.escape(source)
        for placeholder, regex in self.PLACEHOLDERS.items():
            pattern = pattern.replace(re.escape(placeholder), regex)
        self.recogniser = re.compile(pattern)

    def render(self, tag, digest):
        hex_ = "".join(c.lower() for c in digest.rsplit(":", 1)[-1] if c.isascii() and c.isalnum())
        rendered = self.source.replace("{tag}", tag).replace("{digest12}", hex_[:12]).replace("{digest}", hex_)
        if len(rendered) > 128:
            raise ValueError(f"`{rendered}` is longer than 128 characters")
        return rendered

    def matches(self, tag):
        return self.recogniser.fullmatch(tag) is not None


def derive_mutability(tags):
    """The ECR tag-mutability setting a class requires: explicit, or derived from protected / mutable tags."""
    mode = tags.get("mutability", "derive")
    if mode != "derive":
        return (mode, tuple(sorted(set(tags.get("exclusion-filters", [])))))
    protected, mutable = tags.get("protected", []), tags.get("mutable", [])
    wildcard = lambda ps: len(ps) <= 5 and not any(p.startswith("regex:") for p in ps)
    if not protected:
        return ("MUTABLE", ())
    if any(set(p) == {"*"} for p in protected):
        if not mutable:
            return ("IMMUTABLE", ())
        return ("IMMUTABLE_WITH_EXCLUSION", tuple(sorted(set(mutable)))) if wildcard(mutable) else ("MUTABLE", ())
    return ("MUTABLE_WITH_EXCLUSION", tuple(sorted(set(protected)))) if wildcard(protected) else ("MUTABLE", ())


class Class:
    def __init__(self, raw):
        self.name = raw["name"]
        self.repositories = [Pattern(p) for p in raw.get("repositories", [])]
        self.managed = raw.get("managed", True)
        self.tags = self.gate = None
        if "gate" in raw:
            gate = raw["gate"]
            self.gate = {
                "max": {s.upper(): n for s, n in gate.get("max", {}).items()},
                "fixable-only": gate.get("fixable-only", False),
                "min-epss": gate.get("min-epss"),
                "exploitable-only": gate.get("exploitable-only", False),
                "promote": [Template(t) for t in gate.get("promote", [])],
                "on-failure": gate.get("on-failure", "notify"),
                "allow": [{"id": a["id"], "reason": a["reason"], "expires": a["expires"],
                           "repositories": [Pattern(p) for p in a.get("repositories", [])]}
                          for a in gate.get("allow", [])],
            }
        if "tags" in raw:
            tags = raw["tags"]
            quarantine = tags.get("quarantine-tag", "quarantine-{digest12}")
            self.tags = {
                "allowed": [Pattern(p) for p in tags.get("allowed", [])],
                "protected": [Pattern(p) for p in tags.get("protected", [])],
                "mutable": [Pattern(p) for p in tags.get("mutable", [])],
                "remediation": tags["remediation"],
                "quarantine": Template(quarantine) if quarantine else None,
                "mutability": derive_mutability(tags),
                "promotion": self.gate["promote"] if self.gate else [],
            }

    def is_allowed(self, tag):
        return not self.tags["allowed"] or any_match(self.tags["allowed"], tag)

    def is_protected(self, tag):
        return any_match(self.tags["protected"], tag) and not any_match(self.tags["mutable"], tag)

    def is_own_tag(self, tag):
        rules = self.tags
        return bool(rules["quarantine"] and rules["quarantine"].matches(tag)) or any(
            t.matches(tag) for t in rules["promotion"])


def load_policy(path=POLICY_FILE):
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    classes = [Class(c) for c in raw.get("class", [])]
    default = raw.get("default-class", "unmanaged")
    return classes, next((c for c in classes if c.name == default), None)


CLASSES, DEFAULT_CLASS = load_policy()


def managed_class(repository):
    """The repository's managed class, or (None, why it is left alone)."""
    found = next((c for c in CLASSES if any_match(c.repositories, repository)), DEFAULT_CLASS)
    if found is None:
        return None, f"{repository} matches no class and the default is unmanaged"
    if not found.managed:
        return None, f"{repository} belongs to unmanaged class `{found.name}`"
    return found, None


# ---------------------------------------------------------------------------------------------------- clients

ECR = client("ecr")
DYNAMODB = client("dynamodb")
SNS = client("sns")


# ---------------------------------------------------------------------------------------------------- outcomes

def start(function, event):
    """The outcome skeleton for an event, and where the call counter stood."""
    return {"function": function, "event-id": event.get("id", ""), "event": event.get("detail-type", ""),
            "decision": "", "reasons": [], "actions": [], "notified": False, "dry-run": DRY_RUN}, dict(CALLS)


def finish(outcome, before):
    outcome["aws-calls"] = {op: n - before.get(op, 0) for op, n in CALLS.items() if n - before.get(op, 0) > 0}
    print(json.dumps({"level": "INFO", "message": "outcome", "function": outcome["function"],
                      "decision": outcome["decision"], "aws_calls": sum(outcome["aws-calls"].values()),
                      "reasons": outcome["reasons"]}), flush=True)
    return outcome


def skipped(outcome, reason):
    outcome.update(decision="skipped", reasons=[reason])
    return outcome


def for_class(outcome, cls, repository, digest=None, tags=()):
    outcome.update(repository=repository, digest=digest, tags=list(tags), **{"class": cls.name})
    return outcome


# ---------------------------------------------------------------------------------------------------- ECR

def describe_image(repository, image_id):
    """`(digest, tags)` of the image, `None` when it is gone, `"no-repository"` when the repository is."""
    try:
        details = ECR.describe_images(repositoryName=repository, imageIds=[image_id])["imageDetails"]
    except ClientError as e:
        if error_code(e) == "RepositoryNotFoundException":
            return "no-repository"
        if error_code(e) == "ImageNotFoundException":
            return None
        raise
    return (details[0]["imageDigest"], details[0].get("imageTags", [])) if details else None


def get_manifest(repository, digest):
    try:
        images = ECR.batch_get_image(repositoryName=repository, imageIds=[{"imageDigest": digest}],
                                     acceptedMediaTypes=MANIFEST_MEDIA_TYPES)["images"]
    except ClientError as e:
        if error_code(e) == "RepositoryNotFoundException":
            return None
        raise
    return next((i for i in images if i.get("imageManifest")), None)


def put_tag(repository, tag, digest, image):
    """`(result, detail)` of pointing `tag` at the manifest; safe to repeat."""
    params = {"repositoryName": repository, "imageTag": tag, "imageManifest": image["imageManifest"],
              "imageDigest": digest}
    if image.get("imageManifestMediaType"):
        params["imageManifestMediaType"] = image["imageManifestMediaType"]
    try:
        ECR.put_image(**params)
        return "done", None
    except ClientError as e:
        if error_code(e) == "ImageAlreadyExistsException":
            return "already-done", None
        if error_code(e) != "ImageTagAlreadyExistsException":
            raise
    current = describe_image(repository, {"imageTag": tag})
    if isinstance(current, tuple) and current[0] == digest:
        return "already-done", None
    points_at = current[0] if isinstance(current, tuple) else "another image"
    return "failed", f"`{tag}` is immutable and points at {points_at}"


def execute(repository, steps):
    """Runs steps (`(kind, tag_or_setting, digest)`) in order, stops at the first failure, reads each manifest
    once. Returns the actions."""
    actions, manifests = [], {}
    for kind, what, digest in steps:
        name = {"add-tag": f"add tag `{what}` to {digest}", "remove-tag": f"remove tag `{what}`",
                "point-tag": f"point tag `{what}` back at {digest}"}.get(kind) or f"set tag mutability to {what}"
        if DRY_RUN:
            actions.append({"action": name, "result": "dry-run"})
            continue
        detail = None
        if kind in ("add-tag", "point-tag"):
            if digest not in manifests:
                manifests[digest] = get_manifest(repository, digest)
            if manifests[digest] is None:
                result, detail = "gone", f"image {digest} no longer exists"
            else:
                result, detail = put_tag(repository, what, digest, manifests[digest])
        elif kind == "remove-tag":
            failures = ECR.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": what}])["failures"]
            code = failures[0].get("failureCode", "") if failures else None
            if code is None:
                result = "done"
            elif code in ("ImageNotFound", "ImageTagDoesNotMatchDigest"):
                result = "already-done"
            else:
                result, detail = "failed", f"{code}: {failures[0].get('failureReason', '')}"
        else:
            mode, filters = what
            params = {"repositoryName": repository, "imageTagMutability": mode}
            if filters:
                params["imageTagMutabilityExclusionFilters"] = [{"filterType": "WILDCARD", "filter": f} for f in filters]
            try:
                ECR.put_image_tag_mutability(**params)
                result = "done"
            except ClientError as e:
                if error_code(e) != "RepositoryNotFoundException":
                    raise
                result, detail = "gone", "repository no longer exists"
        actions.append({"action": name, "result": result, **({"detail": detail} if detail else {})})
        if result in ("failed", "gone"):
            break
    return actions


# ---------------------------------------------------------------------------------------------------- ledger

def s(value):
    return {"S": value}


def put_if_absent(item):
    """Conditional PutItem. False: the item was there already."""
    try:
        DYNAMODB.put_item(TableName=LEDGER_TABLE, Item=item, ConditionExpression="attribute_not_exists(pk)")
        return True
    except ClientError as e:
        if error_code(e) == "ConditionalCheckFailedException":
            return False
        raise


def history_item(pk, at, what, digest, detail, event_id):
    return {"pk": s(pk), "sk": s(f"HIST#{at}#{event_id}"), "at": s(at), "what": s(what), "digest": s(digest),
            "detail": s(detail), "event_id": s(event_id)}


def record_push(repository, tag, digest, since, event_id):
    """One conditional UpdateItem: `("new" | "unchanged", None)`, or `("moved" | "newer", old pointer)`."""
    try:
        old = DYNAMODB.update_item(
            TableName=LEDGER_TABLE, Key={"pk": s(f"TAG#{repository}:{tag}"), "sk": s("CURRENT")},
            UpdateExpression="SET digest = :d, since = if_not_exists(since, :t), repository = :r, tag = :g, "
                             "last_event = :e REMOVE deleted_at",
            ConditionExpression="attribute_not_exists(digest) OR digest = :d",
            ExpressionAttributeValues={":d": s(digest), ":t": s(since), ":r": s(repository), ":g": s(tag),
                                       ":e": s(event_id)},
            ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD").get("Attributes", {})
        return ("unchanged" if "digest" in old else "new"), None
    except ClientError as e:
        item = e.response.get("Item") if error_code(e) == "ConditionalCheckFailedException" else None
        if not item or "digest" not in item:
            raise
        pointer = {"digest": item["digest"]["S"], "since": item.get("since", {}).get("S", ""),
                   "deleted_at": item.get("deleted_at", {}).get("S")}
        return ("newer" if pointer["since"] > since else "moved"), pointer


def accept_move(repository, tag, previous, digest, since, event_id):
    """Moves the pointer from `previous` and keeps it as history, in one transaction."""
    pk = f"TAG#{repository}:{tag}"
    ended = f", tag deleted at {previous['deleted_at']}" if previous.get("deleted_at") else ""
    DYNAMODB.transact_write_items(TransactItems=[
        {"Update": {"TableName": LEDGER_TABLE, "Key": {"pk": s(pk), "sk": s("CURRENT")},
                    "UpdateExpression": "SET digest = :d, since = :t, last_event = :e REMOVE deleted_at",
                    "ConditionExpression": "digest = :prev",
                    "ExpressionAttributeValues": {":d": s(digest), ":t": s(since), ":e": s(event_id),
                                                  ":prev": s(previous["digest"])}}},
        {"Put": {"TableName": LEDGER_TABLE, "Item": history_item(
            pk, since, "moved", previous["digest"],
            f"pointed here since {previous['since']}{ended}; moved to {digest}", event_id)}}])


# ---------------------------------------------------------------------------------------------------- notify

def notification(function, event, outcome, kind, result, reasons, severity):
    return {"schema": "ecr-warden.notification/v1", "kind": kind, "severity": severity, "function": function,
            "repository": outcome.get("repository"), "digest": outcome.get("digest"), "tags": outcome.get("tags", []),
            "outcome": result, "reasons": reasons, "actions": outcome["actions"], "class": outcome.get("class"),
            "dry-run": DRY_RUN, "event-id": event["id"], "time": event.get("time", "")}


def text(n):
    lines = [f"ecr-warden {n['function']}: {n['kind'].replace('-', ' ')} ({n['severity']})", ""]
    if n["repository"]:
        lines.append(f"Repository: {n['repository']} (class {n['class']})")
    if n["digest"]:
        lines.append(f"Image:      {n['digest']}")
    if n["tags"]:
        lines.append(f"Tags:       {', '.join(n['tags'])}")
    lines.append(f"Outcome:    {n['outcome']}")
    if n["reasons"]:
        lines += ["", "Why:"] + [f"  - {r}" for r in n["reasons"]]
    if n["actions"]:
        lines += ["", "Actions:"] + [
            f"  - {a['action']}: {a['result']}" + (f" ({a['detail']})" if a.get("detail") else "") for a in n["actions"]]
    lines += ["", f"Event {n['event-id']} at {n['time']}."]
    return "\n".join(lines) + "\n"


def publish(n):
    """SNS Publish in the `standard` format: text for email, the JSON schema for programs."""
    target = f"{n['repository']}:{n['tags'][0]}" if n["repository"] and n["tags"] else (n["repository"] or "")
    subject = f"ecr-warden {n['function']}: {n['kind'].replace('-', ' ')} {target}".strip()
    subject = "".join(c if c.isascii() and c.isprintable() else "?" for c in subject)
    subject = subject if len(subject) <= 99 else subject[:96] + "..."
    body, schema = text(n), json.dumps(n)
    message = {"default": body, "email": body, **{p: schema for p in
               ["email-json", "sqs", "lambda", "http", "https", "firehose"]}}
    attributes = {k: n[v] for k, v in [("kind", "kind"), ("outcome", "outcome"), ("severity", "severity"),
                                       ("function", "function"), ("repository", "repository"), ("class", "class")]
                  if n[v]}
    SNS.publish(TopicArn=TOPIC_ARN, Subject=subject, Message=json.dumps(message), MessageStructure="json",
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()})


def send(n, claim_kind=None):
    """Exactly once per event and kind (or `claim_kind`), as shared/src/delivery does it: a `pending` claim in the
    ledger holding the message (so a later delivery can finish it), publish, then mark the claim `sent` on its
    token. (The peer leaves out taking over a dead holder's claim: the benchmark never meets one.)"""
    print(json.dumps({"level": "INFO", "message": "notification", "kind": n["kind"], "severity": n["severity"]}))
    if not TOPIC_ARN:
        return False
    key = {"pk": s(f"NOTIFY#{n['event-id']}"), "sk": s(claim_kind or n["kind"])}
    token = uuid.uuid4().hex
    if not put_if_absent({**key, "expires_at": {"N": str(int(time.time()) + NOTIFY_TTL_SECONDS)},
                          "claim": s(token), "state": s("pending"), "holder": s(os.environ.get(
                              "AWS_LAMBDA_LOG_STREAM_NAME", "peer")), "notification": s(json.dumps(n))}):
        return False
    publish(n)
    DYNAMODB.update_item(TableName=LEDGER_TABLE, Key=key, UpdateExpression="SET #state = :sent REMOVE notification, holder",
                         ConditionExpression="claim = :token", ExpressionAttributeNames={"#state": "state"},
                         ExpressionAttributeValues={":sent": s("sent"), ":token": s(token)})
    return True


def send_on_change(n):
    """Publish without a claim: only for what this invocation changed (a replay changes nothing)."""
    if TOPIC_ARN:
        publish(n)
    return bool(TOPIC_ARN)


def event_date(event):
    try:
        return datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).date()
    except (KeyError, ValueError):
        return datetime.date.today()
