"""Seeds the local stack for bench/lambda_bench.py and writes the cases: one fresh situation per sample, so
every sample measures the same path (a new tag, a tag to remove, a tag move to revert, ...).

Usage: python bench/prepare.py SAMPLES TABLE TOPIC OUT.json   (run by bench/run; AWS_ENDPOINT_URL set)
"""

import hashlib
import json
import os
import sys
import uuid

import boto3

samples, table, topic, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
endpoint = os.environ["AWS_ENDPOINT_URL"]
ecr = boto3.client("ecr", endpoint_url=endpoint)
dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
sns = boto3.client("sns", endpoint_url=endpoint)

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


cases = []

conforming = repo("prod/bench-conforming")
cases.append({"name": "conforming push, new tag", "events": [
    image_action(conforming, push(conforming, f"c{i}", f"v1.0.{i}"), f"v1.0.{i}") for i in range(samples)]})

digest = push(conforming, "replay", "v2.0.0")
replay = image_action(conforming, digest, "v2.0.0")
cases.append({"name": "conforming push, replayed", "events": [replay]})

untag = repo("dev/bench-untag")
cases.append({"name": "tag not allowed, last tag (quarantine + untag)", "events": [
    image_action(untag, push(untag, f"u{i}", f"branch-{i}"), f"branch-{i}") for i in range(samples)]})

revert_events = []
for i in range(samples):
    name = repo(f"prod/bench-revert-{i}")
    original = push(name, f"r{i}", "v1.0.0")
    push(name, f"r{i}", "sha-original")  # keeps the original image in moto when v1.0.0 moves
    dynamodb.put_item(TableName=table, Item={
        "pk": {"S": f"TAG#{name}:v1.0.0"}, "sk": {"S": "CURRENT"},
        "digest": {"S": original}, "since": {"S": "2026-11-20T09:00:00Z"}})
    moved = push(name, f"m{i}", "v1.0.0")
    revert_events.append(image_action(name, moved, "v1.0.0"))
cases.append({"name": "protected tag moved (revert)", "events": revert_events})

create_events = []
for i in range(samples):
    name = repo(f"prod/bench-new-{i}")
    create_events.append(envelope("AWS API Call via CloudTrail", "aws.ecr", {
        "eventSource": "ecr.amazonaws.com", "eventName": "CreateRepository", "awsRegion": "us-east-1",
        "requestParameters": {"repositoryName": name},
        "responseElements": {"repository": {"repositoryName": name}}}))
cases.append({"name": "CreateRepository, drift fixed", "events": create_events})

cases.append({"name": "unknown event (skipped)", "events": [
    envelope("Object Created", "aws.s3", {"bucket": {"name": "b"}})]})

with open(out, "w") as f:
    json.dump(cases, f)
print(topic_arn)
