"""Seeds the local stack for bench/lambda_bench.py and writes the cases: one fresh situation per sample and per
runtime, so every sample measures the same path (a new tag, a tag to remove, a tag move to revert, ...). Each
case has `events` for the Rust function and `peer_events` for the Python / boto3 peer (bench/peer), the same
situations under other names.

Usage: python bench/prepare.py FUNCTION SAMPLES TABLE TOPIC OUT.json   (run by bench/run; AWS_ENDPOINT_URL set)
BENCH_CASES: only the cases of these names (one per line); bench/cold-start names one per function.
FUNCTION is tag-guard, scan-gate, lifecycle or notify (the peer has a handler for each). Prints the topic ARN.
"""

import hashlib
import json
import os
import re
import sys
import tomllib
import uuid

import urllib.request

import boto3

function, samples, table, topic, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
endpoint = os.environ["AWS_ENDPOINT_URL"]
ecr = boto3.client("ecr", endpoint_url=endpoint)
dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
sns = boto3.client("sns", endpoint_url=endpoint)

if table not in dynamodb.list_tables()["TableNames"]:
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    )
topic_arn = sns.create_topic(Name=topic)["TopicArn"]


def manifest(seed):
    digest = lambda s: "sha256:" + hashlib.sha256(s.encode()).hexdigest()
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest("c" + seed), "size": 1469},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest("l" + seed), "size": 3623807}],
    })


def push(repo, seed, tag):
    body = manifest(seed)
    digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    ecr.put_image(repositoryName=repo, imageManifest=body, imageTag=tag, imageDigest=digest,
                  imageManifestMediaType="application/vnd.oci.image.manifest.v1+json")
    return digest


def envelope(detail_type, source, detail, time="2026-11-20T10:00:00Z"):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": "123456789012", "time": time, "region": "us-east-1", "resources": [], "detail": detail}


def image_action(repo, digest, tag, time="2026-11-20T10:00:00Z"):
    return envelope("ECR Image Action", "aws.ecr", {
        "action-type": "PUSH", "result": "SUCCESS", "repository-name": repo, "image-digest": digest,
        "image-tag": tag, "manifest-media-type": "application/vnd.oci.image.manifest.v1+json"}, time)


def repo(name, mutability="MUTABLE"):
    ecr.create_repository(repositoryName=name, imageTagMutability=mutability)
    return name


def moto_post(path, payload):
    request = urllib.request.Request(endpoint + path, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status


RUNNERS = ("rs", "py")  # `events` (Rust), `peer_events` (Python peer)


ONLY = set(filter(None, os.environ.get("BENCH_CASES", "").splitlines()))


def case(name, make, runners=RUNNERS, **extra):
    """A case whose sample `i` of runner `r` is `make(r, i)`, made in the order the harness consumes them.
    `extra`: `env` and `timeout_s` for the function's processes (see bench/lambda_bench.py). None when BENCH_CASES
    leaves it out (nothing is made for it)."""
    if ONLY and name not in ONLY:
        return None
    made = {r: [] for r in RUNNERS}
    for i in range(samples):
        for r in runners:
            made[r].append(make(r, i))
    return {"name": name, "events": made["rs"], "peer_events": made["py"], **extra}


def tag_guard_cases():
    cases = []

    conforming = repo("prod/bench-conforming")
    minor = {"rs": 0, "py": 1}
    cases.append(case("conforming push, new tag", lambda r, i: image_action(
        conforming, push(conforming, f"{r}c{i}", f"v1.{minor[r]}.{i}"), f"v1.{minor[r]}.{i}")))

    replays = {r: image_action(conforming, push(conforming, f"{r}replay", f"v2.{minor[r]}.0"), f"v2.{minor[r]}.0")
               for r in RUNNERS}
    cases.append(case("conforming push, replayed", lambda r, i: replays[r]))

    untag = repo("dev/bench-untag")
    cases.append(case("tag not allowed, last tag (quarantine + untag)", lambda r, i: image_action(
        untag, push(untag, f"{r}u{i}", f"branch-{r}-{i}"), f"branch-{r}-{i}")))

    def moved(r, i):
        name = repo(f"prod/bench-revert-{r}-{i}")
        original = push(name, f"{r}r{i}", "v1.0.0")
        push(name, f"{r}r{i}", "sha-original")  # keeps the original image in moto when v1.0.0 moves
        dynamodb.put_item(TableName=table, Item={
            "pk": {"S": f"TAG#{name}:v1.0.0"}, "sk": {"S": "CURRENT"},
            "digest": {"S": original}, "since": {"S": "2026-11-20T09:00:00Z"}})
        return image_action(name, push(name, f"{r}m{i}", "v1.0.0"), "v1.0.0")
    cases.append(case("protected tag moved (revert)", moved))

    def created(r, i):
        name = repo(f"prod/bench-new-{r}-{i}")
        return envelope("AWS API Call via CloudTrail", "aws.ecr", {
            "eventSource": "ecr.amazonaws.com", "eventName": "CreateRepository", "awsRegion": "us-east-1",
            "requestParameters": {"repositoryName": name},
            "responseElements": {"repository": {"repositoryName": name}}})
    cases.append(case("CreateRepository, drift fixed", created))

    unknown = envelope("Object Created", "aws.s3", {"bucket": {"name": "b"}})
    cases.append(case("unknown event (skipped)", lambda r, i: unknown))

    return cases


def seed_scan(repo, digest, findings):
    """The image's basic scan in moto, as scan-gate re-reads it before it decides (gate integrity): started (a
    rescan, like ECR's one a day, is refused and the seed replaces the results), seeded, and read once so that moto
    pins the seeded result to this image."""
    try:
        ecr.start_image_scan(repositoryName=repo, imageId={"imageDigest": digest})
    except ecr.exceptions.LimitExceededException:
        pass
    counts = {}
    for finding in findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    moto_post("/moto-api/static/ecr/scan-finding-results", {"results": [{
        "registryId": "123456789012", "repositoryName": repo, "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
        "imageScanFindings": {"findingSeverityCounts": counts, "findings": findings}}]})
    ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest})


def basic_scan(repo, digest, tags, counts):
    """The scan event, and the same scan in moto (findings named CVE-2026-1000.. by severity)."""
    seed_scan(repo, digest, [{"name": f"CVE-2026-{1000 + n}", "severity": severity,
                              "uri": f"https://nvd.nist.gov/vuln/detail/CVE-2026-{1000 + n}", "attributes": []}
                             for severity, count in counts.items() for n in range(count)])
    return envelope("ECR Image Scan", "aws.ecr", {"scan-status": "COMPLETE", "repository-name": repo,
                    "image-digest": digest, "image-tags": tags, "finding-severity-counts": counts})


def inspector_finding(repo, digest, tag, vuln, severity):
    return {"findingArn": f"arn:aws:inspector2:us-east-1:123456789012:finding/{uuid.uuid4().hex}",
            "awsAccountId": "123456789012", "type": "PACKAGE_VULNERABILITY", "title": f"{vuln} - openssl",
            "description": "A flaw.", "severity": severity, "status": "ACTIVE", "inspectorScore": 7.5,
            "fixAvailable": "YES", "exploitAvailable": "NO", "firstObservedAt": 1764000000.0,
            "lastObservedAt": 1764000000.0, "updatedAt": 1764000000.0,
            "packageVulnerabilityDetails": {"vulnerabilityId": vuln, "source": "NVD", "vulnerablePackages": [
                {"name": "openssl", "version": "3.0.13", "fixedInVersion": "3.0.15", "packageManager": "OS"}]},
            "resources": [{"type": "AWS_ECR_CONTAINER_IMAGE", "id": f"arn:aws:ecr:us-east-1:123456789012:repository/{repo}/{digest}",
                           "region": "us-east-1", "details": {"awsEcrContainerImage": {
                               "repositoryName": repo, "imageHash": digest, "imageTags": [tag], "registry": "123456789012",
                               "architecture": "amd64", "pushedAt": 1764000000.0}}}]}


def scan_gate_cases():
    cases = []
    dev = repo("dev/bench-gate")
    number = {"rs": 0, "py": 5000}
    cases.append(case("basic scan passes on counts, promoted", lambda r, i: basic_scan(
        dev, push(dev, f"{r}p{i}", f"pr-{number[r] + i}"), [f"pr-{number[r] + i}"], {"HIGH": 2})))
    cases.append(case("basic scan fails on counts, blocked", lambda r, i: basic_scan(
        dev, push(dev, f"{r}b{i}", f"pr-{number[r] + 1000 + i}"), [f"pr-{number[r] + 1000 + i}"], {"CRITICAL": 1})))
    prod = repo("prod/payments-bench")
    minor = {"rs": 0, "py": 1}

    def allowlisted(r, i):
        digest = push(prod, f"{r}a{i}", f"v4.{minor[r]}.{i}")
        seed_scan(prod, digest, [
            {"name": "CVE-2026-31337", "severity": "CRITICAL", "uri": "https://nvd.nist.gov/vuln/detail/CVE-2026-31337",
             "attributes": [{"key": "package_name", "value": "openssl"}]}])
        return envelope("ECR Image Scan", "aws.ecr", {
            "scan-status": "COMPLETE", "repository-name": prod, "image-digest": digest,
            "image-tags": [f"v4.{minor[r]}.{i}"], "finding-severity-counts": {"CRITICAL": 1}})
    cases.append(case("allowlist: findings read, allowlisted, promoted", allowlisted))

    # moto answers ListFindings from a queue, one entry per new query: queued in the order the harness runs.
    pages = []

    def demoted(r, i):
        name = f"prod/orders-bench-{r}-{i}"
        repo(name)
        digest = push(name, f"{r}o{i}", "v1.5.0")
        push(name, f"{r}o{i}", "v1.5.0-approved")
        finding = inspector_finding(name, digest, "v1.5.0", f"CVE-2026-{5000 + number[r] + i}", "HIGH")
        pages.append([finding])
        # EventBridge carries Inspector timestamps as strings, the API as epoch seconds.
        detail = json.loads(json.dumps(finding))
        for key in ("firstObservedAt", "lastObservedAt", "updatedAt"):
            detail[key] = "Sat Nov 28 09:00:00.000 UTC 2026"
        detail["resources"][0]["details"]["awsEcrContainerImage"]["pushedAt"] = "Sat Nov 28 08:00:00.000 UTC 2026"
        return envelope("Inspector2 Finding", "aws.inspector2", detail)
    cases.append(case("Inspector finding: promoted image demoted", demoted))
    moto_post("/moto-api/static/inspector2/findings-results", {"results": pages})
    unknown = envelope("Object Created", "aws.s3", {"bucket": {"name": "b"}})
    cases.append(case("unknown event (skipped)", lambda r, i: unknown))
    return cases


POLICY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "warden.toml")


def native_policy(class_name):
    """The class's native lifecycle policy as the function puts it (`{"rules": [...]}`), from warden.toml."""
    with open(POLICY_FILE, "rb") as f:
        policy = tomllib.load(f)
    (cls,) = [c for c in policy["class"] if c["name"] == class_name]
    return json.dumps({"rules": cls["lifecycle"]["native"]})


def bench_policy():
    """warden.toml with `protect-in-use = false` for the development class: moto 5.2.5 has no Inspector
    ListCoverage, which a sweep that deletes calls first under the shipped policy. Written beside OUT.json."""
    with open(POLICY_FILE) as f:
        text = f.read()
    development = re.compile(r'(name = "development"\n.*?\[class\.lifecycle\.retention\]\n)', re.S)
    text, n = development.subn(r"\1protect-in-use = false   # bench: moto has no Inspector ListCoverage\n", text, 1)
    assert n == 1, "warden.toml has no development class with retention: update bench/prepare.py"
    path = os.path.join(os.path.dirname(os.path.abspath(out)), "bench-lifecycle-policy.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def production_applies_policy():
    """warden.toml with step two of the rollout for the production class (`[class.lifecycle] apply = true`), so a
    new repository gets its policy set. Written beside OUT.json."""
    with open(POLICY_FILE) as f:
        text = f.read()
    text, n = re.subn(r"(\[class\.lifecycle\]\n)apply = false\n", r"\1apply = true\n", text, 1)
    assert n == 1, "warden.toml's first class has no `[class.lifecycle] apply = false`: update bench/prepare.py"
    path = os.path.join(os.path.dirname(os.path.abspath(out)), "bench-lifecycle-apply-policy.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def lifecycle_cases():
    cases = []
    # The Rust samples' repositories keep their names (`prefix-<i>`); the peer's are `prefix-py-<i>`.
    named = lambda prefix, r, i: f"{prefix}-{i}" if r == "rs" else f"{prefix}-{r}-{i}"

    def created(prefix, policy=None):
        def make(r, i):
            name = repo(named(prefix, r, i))
            if policy:
                ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy)
            return envelope("AWS API Call via CloudTrail", "aws.ecr", {
                "eventSource": "ecr.amazonaws.com", "eventName": "CreateRepository", "awsRegion": "us-east-1",
                "requestParameters": {"repositoryName": name},
                "responseElements": {"repository": {"repositoryName": name}}})
        return make
    cases.append(case("CreateRepository, production, no lifecycle policy: policy set",
                      created("prod/bench-lc-new"), env={"WARDEN_POLICY_FILE": production_applies_policy()}))
    cases.append(case("CreateRepository replayed: policy already there",
                      created("prod/bench-lc-replay", native_policy("production"))))

    development = native_policy("development")

    def swept(prefix, builds):
        """A development repository carrying its class's native policy and `builds` (pull request, build)."""
        def make(r, i):
            name = repo(named(prefix, r, i))
            ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=development)
            for pr, build in builds:
                push(name, f"{name}:{pr}-{build}", f"pr-{pr}-{build}")
            # EventBridge Scheduler's payload: `detail` as JSON text; `repositories` narrows the sweep to one.
            return {**envelope("Scheduled Event", "aws.scheduler", json.dumps({"repositories": [name]})),
                    "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/lifecycle-sweep"]}
        return make
    # The function's deployed timeout (infra/template.yaml): a sweep stops 60 s before its deadline.
    sweep = {"timeout_s": 900}
    # 10 pull requests x 5 builds: the class keeps the newest 3 of each, 20 of 50 go (under its caps: 100, 0.6).
    cases.append(case("sweep, one development repository, 50 builds: 20 deleted",
                      swept("dev/bench-lc-sweep", [(pr, b) for pr in range(1, 11) for b in range(1, 6)]),
                      env={"WARDEN_POLICY_FILE": bench_policy()}, **sweep))
    # 17 pull requests with at most 3 builds each: the same 50 images, nothing to delete.
    cases.append(case("sweep, one development repository, 50 builds: nothing to delete",
                      swept("dev/bench-lc-keep", [(pr, b) for pr in range(1, 18) for b in range(1, 4)][:50]),
                      **sweep))
    return cases


EVENTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "events")


def sample_event(name, **detail):
    """A sample event from events/ under a new id, with `detail` fields replaced."""
    with open(os.path.join(EVENTS_DIR, name)) as f:
        event = json.load(f)
    event["id"] = str(uuid.uuid4())
    event["detail"].update({k.replace("_", "-"): v for k, v in detail.items()})
    return event


def notify_cases():
    """notify makes no ECR call: the events need no repository or image in moto, only a new event id per sample
    and runtime (each sample claims and publishes), and for the replay a claim already in the ledger."""
    cases = []
    digest = lambda seed: "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
    minor = {"rs": 0, "py": 1}
    cases.append(case("replication failed: notified", lambda r, i: sample_event(
        "ecr-replication-failed.json", image_digest=digest(f"{r}f{i}"), image_tag=f"sha-{r}{i:05d}")))

    def replayed(r, i):
        event = sample_event("ecr-replication-failed.json", image_digest=digest(f"{r}r{i}"), image_tag=f"sha-{r}r{i:04d}")
        # What the first delivery of this event left in the ledger (shared/src/aws/ledger.rs, claim_notification).
        dynamodb.put_item(TableName=table, Item={
            "pk": {"S": f"NOTIFY#{event['id']}"}, "sk": {"S": "replication-failed"},
            "expires_at": {"N": "4102444800"}, "claim": {"S": "bench-first-delivery"}})
        return event
    cases.append(case("replication failed, replayed: already notified", replayed))
    cases.append(case("protected tag deleted (critical)", lambda r, i: sample_event(
        "ecr-image-delete.json", image_digest=digest(f"{r}d{i}"), image_tag=f"v3.{minor[r]}.{i}")))
    cases.append(case("replication succeeded into dev/: not reported (skipped)", lambda r, i: sample_event(
        "ecr-replication-success.json", repository_name="dev/web-frontend", image_digest=digest(f"{r}s{i}"),
        image_tag=f"pr-{r}-{i}")))
    return cases


cases = {"tag-guard": tag_guard_cases, "scan-gate": scan_gate_cases, "lifecycle": lifecycle_cases,
         "notify": notify_cases}[function]()
with open(out, "w") as f:
    json.dump([c for c in cases if c is not None], f)
print(topic_arn)
