#!/usr/bin/env python3
"""`warden lifecycle preview` end to end on a large inventory: writes a describe-images JSON of N images and the
50-rule policy of the criterion benchmark, then times the release binary (parse policy and inventory, evaluate,
print the GetLifecyclePolicyPreview JSON) over several runs and reports the median and peak RSS.

Usage: bench/preview.py [IMAGES] [RUNS]     (defaults: 100000 images, 5 runs; needs target/release/warden)
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

NOW = 1_795_000_000
DAY = 86_400


def policy():
    rules = []
    for i in range(24):
        rules.append({"rulePriority": i + 1, "selection": {"tagStatus": "tagged", "tagPrefixList": [f"team{i}-"],
                      "countType": "imageCountMoreThan", "countNumber": 20}, "action": {"type": "expire"}})
    for i in range(23):
        rules.append({"rulePriority": 100 + i, "selection": {"tagStatus": "tagged", "tagPatternList": [f"*-build{i}-*"],
                      "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
                      "action": {"type": "expire"}})
    rules.append({"rulePriority": 200, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                  "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}})
    rules.append({"rulePriority": 201, "selection": {"tagStatus": "any", "storageClass": "archive",
                  "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 180},
                  "action": {"type": "expire"}})
    rules.append({"rulePriority": 300, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                  "countNumber": 5000}, "action": {"type": "expire"}})
    return {"rules": rules}


def images(n):
    details = []
    for i in range(n):
        archived = i % 50 == 0
        detail = {
            "imageDigest": f"sha256:{i:064x}",
            "imagePushedAt": NOW - (i % 400) * DAY - i,
            "imageSizeInBytes": 30_000_000,
            "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
            "imageStatus": "ARCHIVED" if archived else "ACTIVE",
        }
        if i % 7:
            detail["imageTags"] = [f"team{i % 30}-build{i % 25}-{i}"]
        if archived:
            detail["lastArchivedAt"] = NOW - 200 * DAY
        details.append(detail)
    return {"imageDetails": details}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.join(root, "target", "release", "warden")
    with tempfile.TemporaryDirectory() as tmp:
        policy_path, images_path = os.path.join(tmp, "policy.json"), os.path.join(tmp, "images.json")
        with open(policy_path, "w") as f:
            json.dump(policy(), f)
        with open(images_path, "w") as f:
            json.dump(images(n), f)
        size = os.path.getsize(images_path)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run([binary, "lifecycle", "preview", "--policy", policy_path, "--images", images_path,
                                   "--now", "2026-11-18T20:53:20Z"], stdout=subprocess.PIPE, check=True)
            times.append(time.perf_counter() - start)
        preview = json.loads(done.stdout)
    rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"images: {n} (inventory {size / 1e6:.1f} MB), runs: {runs}")
    print(f"median: {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    print(f"peak RSS: {rss_mib:.0f} MiB ({rss_mib * 1024 * 1024 / n:.0f} bytes per image)")
    print(f"expiring: {preview['summary']['expiringImageTotalCount']}, output {len(done.stdout) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
