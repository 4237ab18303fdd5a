"""lifecycle in Python / boto3, the benchmark peer of functions/lifecycle (Lambda handler `lifecycle.handler`).

Faithful for what bench/run measures, with the same AWS calls per case as the Rust function:
- CloudTrail CreateRepository: GetLifecyclePolicy, compared with the class's `[[class.lifecycle.native]]` rules
  as JSON (rule order, tag-list order and empty tag lists do not count); PutLifecyclePolicy when it differs, then a claimed `lifecycle-policy-applied` notification (PutItem +
  Publish). Already current (a replay): one ledger Query for notifications an earlier attempt parked.
- Scheduled sweep (EventBridge rule or Scheduler, `repositories` narrowing it, else DescribeRepositories, all
  pages): the sweep cursor (GetItem), per repository of a class with lifecycle rules the native policy (drift
  fixed) and the class's retention, stopping 60 s before the deadline (cursor PutItem / DeleteItem), one summary
  notification for policies set, and one Query for parked notifications at the end.
- Retention (`warden::lifecycle::plan_retention`): DescribeImages (all pages, every storage class), ECR's rule
  semantics (priority order, one rule per image, shielding, newest first by push second, ties by digest), tag
  patterns (ECR wildcards, `regex:`) and prefixes, `group-by` keep-N per group, since-image-pushed / -pulled,
  protections (protect / protected patterns, promotion tags, in use via Inspector ListCoverage, minimum age,
  the 90-day archive minimum, children of kept indexes via BatchGetImage), the safety caps, dry run; then ListImages (tags re-read),
  BatchDeleteImage per 100, and a `retention` notification claimed per repository (`retention@<repository>`),
  or for a standing plan (dry run, over a cap) the `PLAN#<repository>` fingerprint write.
- PUSH with `after-push`: retention on that repository (+ the parked Query when nothing was deleted).

Left out: notification routes and formats other than `standard`, SNS size limits (the `... and N more` line of
a notification listing more than 20 images is not rendered; the JSON carries `actions-omitted`), the policy
validator (the policy is trusted), event validation beyond the fields used, the claim token of the ledger's
conditional writes, parking only on retryable errors (any publish error parks), and Lambda error
classification (an exception fails the invocation).
"""

import datetime
import hashlib
import json
import re
import time
import tomllib

import warden_peer as w
from botocore.exceptions import ClientError

FUNCTION = "lifecycle"
INSPECTOR = w.client("inspector2")
SWEEP_MARGIN_S = 60
LISTED = 20
BATCH_LIMIT = 100
DAY = 86_400
MIN_ARCHIVE_DAYS = 90  # ECR bills an archived image for 90 days: retention keeps it that long
APPLIED, INCOMPLETE = "lifecycle-policy-applied", "lifecycle-sweep-incomplete"
STANDING_PLAN_REPEAT_SECONDS = 7 * 24 * 3600
INDEX_MEDIA_TYPES = ["application/vnd.oci.image.index.v1+json",
                     "application/vnd.docker.distribution.manifest.list.v2+json"]


# ---------------------------------------------------------------------------------------------------- policy

class Rule:
    def __init__(self, raw):
        self.priority, self.count, self.description = raw["priority"], raw["count"], raw.get("description")
        status = raw.get("tag-status", "tagged")
        if status == "tagged" and raw.get("tags"):
            self.selection = ("patterns", [w.Pattern(p) for p in raw["tags"]])
        elif status == "tagged":
            self.selection = ("prefixes", list(raw.get("tag-prefixes", [])))
        else:
            self.selection = (status, None)  # "untagged" or "any"
        self.group_by = re.compile(raw["group-by"]) if raw.get("group-by") else None
        self.count_type = raw["count-type"]

    def summary(self):
        return f"rule {self.priority}: {self.description}" if self.description else f"rule {self.priority}"


class Retention:
    def __init__(self, raw):
        self.apply, self.after_push = raw.get("apply", False), raw.get("after-push", False)
        self.max_images, self.max_fraction = raw.get("max-images", 100), raw.get("max-fraction", 0.5)
        self.protect = [w.Pattern(p) for p in raw.get("protect", [])]
        self.protect_promoted, self.protect_in_use = raw.get("protect-promoted", True), raw.get("protect-in-use", True)
        self.in_use_days, self.min_age_days = raw.get("in-use-days", 30), raw.get("protect-younger-than-days", 0)
        self.rules = sorted((Rule(r) for r in raw.get("rule", [])), key=lambda r: r.priority)


class Lifecycle:
    """A class's `[class.lifecycle]`: the native policy (canonical text and document) and retention."""

    def __init__(self, raw):
        self.native = self.native_text = self.retention = None
        if "native" in raw:
            self.native = {"rules": raw["native"]}
            self.native_text = json.dumps(self.native, sort_keys=True, separators=(",", ":"))
        if "retention" in raw:
            self.retention = Retention(raw["retention"])

    def is_current(self, text):
        """Compared as JSON, ignoring rule order, tag-list order and empty tag lists (as ECR may read it back)."""
        try:
            return text is not None and canonical(json.loads(text)) == canonical(self.native)
        except ValueError:
            return False


def canonical(document):
    document = json.loads(json.dumps(document))
    rules = document.get("rules") if isinstance(document, dict) else None
    if isinstance(rules, list):
        priority = lambda r: r.get("rulePriority") if isinstance(r, dict) else None
        rules.sort(key=lambda r: (isinstance(priority(r), int), priority(r) if isinstance(priority(r), int) else 0))
        for selection in (r.get("selection") for r in rules if isinstance(r, dict)):
            for key in ("tagPrefixList", "tagPatternList") if isinstance(selection, dict) else ():
                if selection.get(key) == []:
                    del selection[key]
                elif isinstance(selection.get(key), list):
                    selection[key].sort(key=lambda t: (isinstance(t, str), t if isinstance(t, str) else ""))
    return document


def load_lifecycle(path=w.POLICY_FILE):
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    return {c["name"]: Lifecycle(c["lifecycle"]) for c in raw.get("class", []) if "lifecycle" in c}


LIFECYCLE = load_lifecycle()


# ---------------------------------------------------------------------------------------------------- handler

def handler(event, context=None):
    outcome, before = w.start(FUNCTION, event)
    source, detail_type, detail = event.get("source"), event.get("detail-type"), event.get("detail")
    if source == "aws.ecr" and detail_type == "AWS API Call via CloudTrail" and (detail or {}).get("eventName") in (
            "CreateRepository", "DeleteRepository"):
        name = detail["requestParameters"]["repositoryName"].split(":repository/")[-1]
        outcome["event"] = f"CloudTrail {detail['eventName']}"
        if detail["eventName"] == "DeleteRepository":
            w.skipped(outcome, f"repository {name} was deleted")
        elif detail.get("errorCode"):
            w.skipped(outcome, f"CreateRepository failed ({detail['errorCode']}): no repository was created")
        else:
            outcome = on_create_repository(event, outcome, name)
    elif source in ("aws.events", "aws.scheduler") and detail_type == "Scheduled Event":
        if isinstance(detail, str):
            detail = json.loads(detail) if detail.strip() else {}
        outcome = on_sweep(event, outcome, sorted(set((detail or {}).get("repositories", []))), deadline(context))
    elif source == "aws.ecr" and detail_type == "ECR Image Action" and (detail or {}).get("action-type") == "PUSH":
        outcome["event"] = "ECR Image Action PUSH"
        outcome = on_push(event, outcome, detail)
    else:
        w.skipped(outcome, f"unknown event `{source}` / `{detail_type}`")
    return w.finish(outcome, before)


def deadline(context):
    """The invocation's deadline (epoch seconds), or None when the runtime sends none in the future."""
    at = getattr(context, "deadline_ms", 0) / 1000
    return at if at > time.time() else None


def on_create_repository(event, outcome, repository):
    cls, why = w.managed_class(repository)
    if cls is None:
        return w.skipped(outcome, why)
    rules = LIFECYCLE.get(cls.name)
    if rules is None or rules.native is None:
        return w.skipped(outcome, f"class `{cls.name}` declares no native lifecycle policy")
    w.for_class(outcome, cls, repository)
    result = apply_baseline(repository, rules)
    if result == "no-repository":
        return w.skipped(outcome, f"repository {repository} no longer exists")
    if result is None:
        outcome["decision"] = "baseline-ok"
        outcome["reasons"].append(f"{repository} already carries class `{cls.name}`'s policy")
        outcome["notified"] = flush_parked(event["id"])
        return outcome
    outcome["decision"] = "baseline-applied"
    outcome["reasons"].append(f"class `{cls.name}`'s lifecycle policy applied to {repository}")
    outcome["actions"].append(result)
    n = w.notification(FUNCTION, event, outcome, APPLIED, "fixed", list(outcome["reasons"]), "info")
    sent = send_after_change(n, APPLIED)
    # News an earlier attempt parked when its put failed: with the claim taken, only cleared.
    outcome["notified"] = flush_parked(event["id"]) or sent
    return outcome


def apply_baseline(repository, rules):
    """None: nothing to do; "no-repository"; else the action that set the policy."""
    try:
        current = w.ECR.get_lifecycle_policy(repositoryName=repository).get("lifecyclePolicyText")
    except ClientError as e:
        if w.error_code(e) == "RepositoryNotFoundException":
            return "no-repository"
        if w.error_code(e) != "LifecyclePolicyNotFoundException":
            raise
        current = None
    if rules.is_current(current):
        return None
    what = "replace the drifted lifecycle policy" if current is not None else "set the lifecycle policy"
    # Before a policy is put, the function reads the repository's images to check it would expire nothing the
    # class protects: the peer makes the same read (its benchmark repositories are new and empty, so it does not
    # carry ECR's rule evaluation for this check).
    inventory(repository)
    if w.DRY_RUN:
        return {"action": what, "result": "dry-run"}
    try:
        w.ECR.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=rules.native_text)
        return {"action": what, "result": "done"}
    except ClientError as e:
        if w.error_code(e) != "RepositoryNotFoundException":
            raise
        return {"action": what, "result": "gone"}


def on_push(event, outcome, detail):
    if detail.get("result") != "SUCCESS":
        return w.skipped(outcome, f"push result is `{detail.get('result')}`, not SUCCESS")
    repository = detail["repository-name"].split(":repository/")[-1]
    cls, why = w.managed_class(repository)
    if cls is None:
        return w.skipped(outcome, why)
    rules = (LIFECYCLE.get(cls.name) or Lifecycle({})).retention
    if rules is None or not rules.after_push:
        return w.skipped(outcome, f"class `{cls.name}` runs retention on the sweep only")
    run = retain(event, cls, rules, repository)
    if run is None:
        return w.skipped(outcome, f"repository {repository} no longer exists")
    item, _deleted = run
    item["notified"] |= flush_parked(event["id"])
    item["event"] = outcome["event"]
    return item


def on_sweep(event, outcome, named, deadline_at):
    repositories = named or sorted(set(list_repositories()))
    cursor = w.DYNAMODB.get_item(TableName=w.LEDGER_TABLE, Key={"pk": w.s(f"SWEEP#{FUNCTION}"), "sk": w.s("CURSOR")},
                                 ConsistentRead=True).get("Item")
    resume_after = cursor["repository"]["S"] if cursor and "S" in cursor.get("repository", {}) else None
    if resume_after is not None:
        outcome["reasons"].append(f"resumed after {resume_after}, where the previous sweep ran out of time")
    baseline_changes, items = [], []
    checked = deleted = 0
    stopped, last_done = False, resume_after
    for repository in (r for r in repositories if resume_after is None or r > resume_after):
        if deadline_at is not None and deadline_at - time.time() < SWEEP_MARGIN_S:
            stopped = True
            break
        last_done = repository
        cls, _ = w.managed_class(repository)
        rules = LIFECYCLE.get(cls.name) if cls else None
        if rules is None:
            continue
        checked += 1
        if rules.native is not None:
            action = apply_baseline(repository, rules)
            if isinstance(action, dict):
                item = w.for_class(w.start(FUNCTION, event)[0], cls, repository)
                item.update(decision="baseline-applied", actions=[action])
                outcome["actions"].append({**action, "action": f"{repository}: {action['action']}"})
                baseline_changes.append(item)
        if rules.retention is not None:
            run = retain(event, cls, rules.retention, repository)
            if run is not None:
                deleted += run[1]
                if run[0]["decision"] != "nothing-to-delete":
                    items.append(run[0])
    cursor_at = last_done if stopped else None
    if cursor_at is not None or resume_after is not None:
        key = {"pk": w.s(f"SWEEP#{FUNCTION}"), "sk": w.s("CURSOR")}
        if cursor_at is not None:
            w.DYNAMODB.put_item(TableName=w.LEDGER_TABLE, Item={**key, "repository": w.s(cursor_at),
                                                                  "at": w.s(event.get("time") or now_rfc3339())})
        else:
            w.DYNAMODB.delete_item(TableName=w.LEDGER_TABLE, Key=key)
    outcome["decision"] = "sweep-incomplete" if stopped else "sweep-complete"
    outcome["reasons"].append(
        f"{len(repositories)} repositories in the sweep, {checked} with lifecycle rules checked, "
        f"{len(baseline_changes)} lifecycle policies set, {deleted} images deleted")
    if stopped and cursor_at is not None:
        outcome["reasons"].append(f"ran out of time after {cursor_at}: the next sweep resumes there")
    elif stopped:
        outcome["reasons"].append(
            f"less than {SWEEP_MARGIN_S} s left before the first repository: the next sweep starts over")
    if baseline_changes or stopped:
        reasons = [f"{c['repository']}: {c['actions'][0]['action']}" for c in baseline_changes] + outcome["reasons"]
        kind, result, severity = (INCOMPLETE, "incomplete", "warning") if stopped else (APPLIED, "fixed", "info")
        outcome["notified"] = send_after_change(w.notification(FUNCTION, event, outcome, kind, result, reasons,
                                                               severity), kind)
    outcome["notified"] |= flush_parked(event["id"])
    outcome["items"] = items + baseline_changes
    return outcome


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_repositories():
    names, token = [], None
    while True:
        page = w.ECR.describe_repositories(maxResults=1000, **({"nextToken": token} if token else {}))
        names += [r["repositoryName"] for r in page.get("repositories", [])]
        token = page.get("nextToken")
        if not token:
            return names


# ---------------------------------------------------------------------------------------------------- observe

def seconds(value):
    """Whole epoch seconds of an SDK timestamp (as the Rust SDK's `DateTime::secs`)."""
    return None if value is None else int(value.timestamp() // 1)


def inventory(repository):
    """DescribeImages, all pages, every storage class. None: the repository is gone."""
    images, token = [], None
    while True:
        try:
            page = w.ECR.describe_images(repositoryName=repository, filter={"imageStatus": "ANY"}, maxResults=1000,
                                         **({"nextToken": token} if token else {}))
        except ClientError as e:
            if w.error_code(e) == "RepositoryNotFoundException":
                return None
            raise
        for d in page.get("imageDetails", []):
            images.append({
                "digest": d.get("imageDigest", ""), "tags": list(d.get("imageTags", [])),
                "pushed_at": seconds(d.get("imagePushedAt")) or 0,
                "last_pulled_at": seconds(d.get("lastRecordedPullTime")),
                "activated_at": seconds(d.get("lastActivatedAt")),
                "archived": d.get("imageStatus") in ("ARCHIVED", "ACTIVATING"),
                "archived_at": seconds(d.get("lastArchivedAt")),
                "size": d.get("imageSizeInBytes"), "media_type": d.get("imageManifestMediaType")})
        token = page.get("nextToken")
        if not token:
            return images


def images_in_use(repository):
    """Amazon Inspector's ListCoverage for the repository's images (all pages): digest -> (count, last use)."""
    criteria = {"ecrRepositoryName": [{"comparison": "EQUALS", "value": repository}],
                "resourceType": [{"comparison": "EQUALS", "value": "AWS_ECR_CONTAINER_IMAGE"}]}
    in_use, token = {}, None
    while True:
        page = INSPECTOR.list_coverage(filterCriteria=criteria, maxResults=200,
                                       **({"nextToken": token} if token else {}))
        for resource in page.get("coveredResources", []):
            digest = resource.get("resourceId", "").rpartition("/")[2]
            image = (resource.get("resourceMetadata") or {}).get("ecrImage")
            if "/" in resource.get("resourceId", "") and image is not None:
                in_use[digest] = (image.get("inUseCount", 0), seconds(image.get("lastInUseAt")))
        token = page.get("nextToken")
        if not token:
            return in_use


def index_children(repository, indexes):
    """Index digest -> the manifests it references (BatchGetImage per 100). None: the repository is gone."""
    children = {}
    for at in range(0, len(indexes), BATCH_LIMIT):
        try:
            images = w.ECR.batch_get_image(repositoryName=repository, acceptedMediaTypes=INDEX_MEDIA_TYPES,
                                           imageIds=[{"imageDigest": d} for d in indexes[at:at + BATCH_LIMIT]])
        except ClientError as e:
            if w.error_code(e) == "RepositoryNotFoundException":
                return None
            raise
        for image in images.get("images", []):
            if image.get("imageManifest"):
                children[image["imageId"].get("imageDigest", "")] = [
                    m["digest"] for m in json.loads(image["imageManifest"]).get("manifests", [])]
    return children


# ---------------------------------------------------------------------------------------------------- decide

def selects(selection, tags):
    kind, what = selection
    if kind == "any":
        return True
    if kind == "untagged":
        return not tags
    if kind == "prefixes":
        return bool(tags) and all(any(t.startswith(p) for t in tags) for p in what)
    return bool(tags) and all(any(p.match(t) for t in tags) for p in what)


def protection(image, rules, patterns, promotion, in_use, now):
    """Why a chosen image is kept, or None."""
    for tag in image["tags"]:
        if any(p.match(tag) for p in patterns):
            return f"protected tag {tag}"
        if rules.protect_promoted and any(t.matches(tag) for t in promotion):
            return f"promoted ({tag})"
    use = in_use.get(image["digest"]) if rules.protect_in_use else None
    if use and (use[0] > 0 or (use[1] is not None and now - use[1] <= rules.in_use_days * DAY)):
        return "in use (Amazon Inspector)"
    if now - image["pushed_at"] < rules.min_age_days * DAY:
        return "younger than the minimum age"
    if image["archived"] and (image["archived_at"] is None or now - image["archived_at"] < MIN_ARCHIVE_DAYS * DAY):
        return f"archived less than {MIN_ARCHIVE_DAYS} days ago (billed for {MIN_ARCHIVE_DAYS} days anyway)"
    return None


def count_reached(rule, image, rank, now):
    if rule.count_type == "image-count-more-than":
        return rank > rule.count
    if rule.count_type == "since-image-pushed":
        return now - image["pushed_at"] > rule.count * DAY
    # since-image-pulled: the last pull; never pulled, the push (or a later restore)
    base = image["pushed_at"] if image["activated_at"] is None else max(image["activated_at"], image["pushed_at"])
    pulled = base if image["last_pulled_at"] is None else max(image["last_pulled_at"], base)
    return now - pulled > rule.count * DAY


def plan_retention(rules, patterns, promotion, images, in_use, children, now):
    """(delete, spared, over_cap): `delete` and `spared` hold (inventory index, rule priority[, why]), in the order
    the Rust plan has them (ascending priority, oldest first within a rule)."""
    # Newest first by push second, ties by digest.
    ranked = sorted(range(len(images)), key=lambda i: (-images[i]["pushed_at"], images[i]["digest"]))
    protections = [protection(images[i], rules, patterns, promotion, in_use, now) for i in ranked]
    taken = [False] * len(ranked)
    delete, spared = [], []
    for rule in rules.rules:
        groups, ranks, claimed, spared_here = {}, {}, [], []
        for p, i in enumerate(ranked):
            image = images[i]
            if not selects(rule.selection, image["tags"]):
                continue
            group = 0
            if rule.group_by is not None:
                names = (m.group(1) for m in map(rule.group_by.search, sorted(image["tags"]))
                         if m and m.group(1) is not None)
                name = next(names, None)
                if name is None:
                    continue
                group = groups.setdefault(name, len(groups))
            ranks[group] = ranks.get(group, 0) + 1
            if not taken[p] and count_reached(rule, image, ranks[group], now):
                if protections[p] is not None:
                    spared_here.append((i, rule.priority, protections[p]))
                else:
                    claimed.append(p)
            taken[p] = True
        delete += [(ranked[p], rule.priority) for p in reversed(claimed)]
        spared += reversed(spared_here)
    # Children of kept indexes are kept too (transitively).
    while True:
        deleting = {images[i]["digest"] for i, _ in delete}
        needed = {}
        for image in images:
            if image["digest"] not in deleting:
                for child in children.get(image["digest"], []):
                    needed.setdefault(child, image["digest"])
        keep = [c for c in delete if images[c[0]]["digest"] in needed]
        if not keep:
            break
        delete = [c for c in delete if images[c[0]]["digest"] not in needed]
        spared += [(i, prio, f"referenced by kept index {needed[images[i]['digest']]}") for i, prio in keep]
    over_cap = None
    if len(delete) > rules.max_images:
        over_cap = (f"the plan deletes {len(delete)} images, more than max-images = {rules.max_images}: "
                    "nothing was deleted")
    elif delete and len(delete) > rules.max_fraction * len(images):
        over_cap = (f"the plan deletes {len(delete)} of {len(images)} images, more than max-fraction = "
                    f"{rules.max_fraction}: nothing was deleted")
    return delete, spared, over_cap


def fingerprint(delete, over_cap, images):
    digest = hashlib.sha256(b"over-cap\n" if over_cap else b"within-caps\n")
    for d, rule in sorted((images[i]["digest"], prio) for i, prio in delete):
        digest.update(f"{d} {rule}\n".encode())
    return digest.hexdigest()[:32]


def plan_reasons(delete, spared, over_cap, images, rules):
    reasons = [f"{len(delete)} of {len(images)} images chosen for deletion"
               + ("" if rules.apply else " (dry run: the class does not set apply = true)")]
    for rule in rules.rules:
        count = sum(1 for _, prio in delete if prio == rule.priority)
        if count:
            reasons.append(f"{rule.summary()}: {count} images")
    reasons += [f"kept {images[i]['digest']}: {why}" for i, _, why in spared[:LISTED]]
    if len(spared) > LISTED:
        reasons.append(f"and {len(spared) - LISTED} more kept by protections")
    if over_cap:
        reasons.insert(0, over_cap)
    return reasons


# ---------------------------------------------------------------------------------------------------- act

def current_tags(repository):
    """ListImages, all pages: digest -> sorted tags. None: the repository is gone."""
    tags, token = {}, None
    while True:
        try:
            page = w.ECR.list_images(repositoryName=repository, maxResults=1000,
                                     **({"nextToken": token} if token else {}))
        except ClientError as e:
            if w.error_code(e) == "RepositoryNotFoundException":
                return None
            raise
        for image_id in page.get("imageIds", []):
            entry = tags.setdefault(image_id.get("imageDigest", ""), [])
            if image_id.get("imageTag"):
                entry.append(image_id["imageTag"])
        token = page.get("nextToken")
        if not token:
            return {d: sorted(t) for d, t in tags.items()}


def delete_images(repository, digests):
    """BatchDeleteImage per 100: digest -> "done" | "already-gone" | (code, reason). None: the repository is gone."""
    results = {}
    for at in range(0, len(digests), BATCH_LIMIT):
        batch = digests[at:at + BATCH_LIMIT]
        try:
            failures = w.ECR.batch_delete_image(repositoryName=repository,
                                                imageIds=[{"imageDigest": d} for d in batch]).get("failures", [])
        except ClientError as e:
            if w.error_code(e) == "RepositoryNotFoundException":
                return None
            raise
        failed = {f.get("imageId", {}).get("imageDigest", ""): (
            "already-gone" if f.get("failureCode") == "ImageNotFound"
            else (f.get("failureCode", ""), f"{f.get('failureReason', '')} (retried next run)")) for f in failures}
        results.update({d: failed.get(d, "done") for d in batch})
    return results


def retain(event, cls, rules, repository):
    """Runs the class's retention on one repository: (outcome, images deleted), or None if it is gone."""
    images = inventory(repository)
    if images is None:
        return None
    patterns = rules.protect + (cls.tags["protected"] if cls.tags else [])
    promotion = cls.gate["promote"] if cls.gate else []
    now = int(time.time())
    in_use, children = {}, {}
    delete, spared, over_cap = plan_retention(rules, patterns, promotion, images, in_use, children, now)
    if delete:
        # Only now is it worth asking what is in use and what kept indexes reference.
        if rules.protect_in_use:
            in_use = images_in_use(repository)
        indexes = [i["digest"] for i in images if i["media_type"] in INDEX_MEDIA_TYPES]
        if indexes:
            children = index_children(repository, indexes)
            if children is None:
                return None
        delete, spared, over_cap = plan_retention(rules, patterns, promotion, images, in_use, children, now)
    outcome = w.for_class(w.start(FUNCTION, event)[0], cls, repository)
    dry_run = w.DRY_RUN or not rules.apply
    outcome["reasons"] = plan_reasons(delete, spared, over_cap, images, rules)
    digests = [images[i]["digest"] for i, _ in delete]
    outcome["decision"] = ("over-cap" if over_cap else "nothing-to-delete" if not digests
                           else "would-delete" if dry_run else "deleted")
    deleted = reclaimed = 0
    if not over_cap and digests:
        if dry_run:
            results = {d: "done" for d in digests}
        else:
            # The inventory may be minutes old: delete only images whose tags are still what the plan saw.
            now_tagged = current_tags(repository)
            if now_tagged is None:
                return None
            unchanged = [images[i]["digest"] for i, _ in delete
                         if now_tagged.get(images[i]["digest"]) == sorted(images[i]["tags"])]
            results = delete_images(repository, unchanged)
            if results is None:
                return None
            for d in digests:
                if d not in results:
                    results[d] = ("TagsChanged", "its tags changed since the inventory; not deleted, re-planned "
                                  "next run") if d in now_tagged else "already-gone"
        for i, prio in delete:
            image, result = images[i], results[images[i]["digest"]]
            action = {"action": f"delete {image['digest']} ({', '.join(image['tags']) or 'untagged'}) by rule {prio}"}
            if result == "done" and dry_run:
                action["result"] = "dry-run"
            elif result == "done":
                deleted += 1
                reclaimed += image["size"] or 0
                action["result"] = "done"
            elif result == "already-gone":
                action["result"] = "already-done"
            else:
                action.update(result="failed", detail=f"{result[0]}: {result[1]}")
            outcome["actions"].append(action)
    if deleted:
        outcome["reasons"].append(f"{deleted} images deleted, {human_bytes(reclaimed)} reclaimed")
    failed = sum(1 for a in outcome["actions"] if a["result"] == "failed")
    if over_cap or outcome["actions"]:
        severity = "warning" if over_cap or failed else "info"
        result = {"deleted": "partly-failed" if failed else "deleted", "would-delete": "dry-run"}.get(
            outcome["decision"], "stopped")
        n = w.notification(FUNCTION, event, outcome, "retention", result, list(outcome["reasons"]), severity)
        if len(n["actions"]) > LISTED:
            n["actions-omitted"] = len(n["actions"]) - LISTED
            n["actions"] = n["actions"][:LISTED]
        claim = f"retention@{repository}"
        standing = outcome["decision"] in ("would-delete", "over-cap")
        if standing and not note_standing_plan(repository, fingerprint(delete, over_cap, images), now):
            outcome["reasons"].append(f"the same plan was reported within the last "
                                      f"{STANDING_PLAN_REPEAT_SECONDS // 86_400} days: not notified again")
        elif deleted:
            outcome["notified"] = send_after_change(n, claim)
        else:
            try:
                outcome["notified"] = send_as(n, claim)
            except Exception:
                if standing:
                    w.DYNAMODB.delete_item(TableName=w.LEDGER_TABLE,
                                           Key={"pk": w.s(f"PLAN#{repository}"), "sk": w.s("retention")})
                raise
    return outcome, deleted


def human_bytes(n):
    value, unit = float(n), 0
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"


# ---------------------------------------------------------------------------------------------------- ledger

def note_standing_plan(repository, fingerprint_, now):
    """Conditional PutItem `PLAN#<repository>`: True when the plan is new, changed or last reported a week ago."""
    try:
        w.DYNAMODB.put_item(
            TableName=w.LEDGER_TABLE,
            Item={"pk": w.s(f"PLAN#{repository}"), "sk": w.s("retention"), "fingerprint": w.s(fingerprint_),
                  "expires_at": {"N": str(now + STANDING_PLAN_REPEAT_SECONDS)}},
            ConditionExpression="attribute_not_exists(pk) OR fingerprint <> :fingerprint OR expires_at < :now",
            ExpressionAttributeValues={":fingerprint": w.s(fingerprint_), ":now": {"N": str(now)}})
        return True
    except ClientError as e:
        if w.error_code(e) == "ConditionalCheckFailedException":
            return False
        raise


def send_as(n, claim_kind):
    """`warden_peer.send` with the claim taken under `claim_kind` (`retention@<repository>`)."""
    return w.send(n, claim_kind)


def send_after_change(n, claim_kind):
    """Sends a notification about changes made; parks it in the ledger if that fails, for the retry to send."""
    try:
        return send_as(n, claim_kind)
    except Exception:
        w.DYNAMODB.put_item(TableName=w.LEDGER_TABLE, Item={
            "pk": w.s(f"NOTIFY#{n['event-id']}"), "sk": w.s(f"PARKED#{claim_kind}"),
            "notification": w.s(json.dumps(n)),
            "expires_at": {"N": str(int(time.time()) + w.NOTIFY_TTL_SECONDS)}})
        raise


def flush_parked(event_id):
    """Sends what an earlier attempt of this event parked (one Query), each claimed once, then removes it."""
    items = w.DYNAMODB.query(
        TableName=w.LEDGER_TABLE, KeyConditionExpression="pk = :pk AND begins_with(sk, :parked)",
        ExpressionAttributeValues={":pk": w.s(f"NOTIFY#{event_id}"), ":parked": w.s("PARKED#")}).get("Items", [])
    sent = False
    for item in items:
        claim_kind = item["sk"]["S"][len("PARKED#"):]
        if "notification" in item:
            n = json.loads(item["notification"]["S"])
            for key in ("repository", "digest", "class"):
                n.setdefault(key, None)
            sent |= send_as(n, claim_kind)
        w.DYNAMODB.delete_item(TableName=w.LEDGER_TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    return sent
