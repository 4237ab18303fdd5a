"""tag-guard in Python / boto3, the benchmark peer of functions/tag-guard (Lambda handler `tag_guard.handler`).

Faithful for what bench/run measures, with the same AWS calls per case as the Rust function:
- PUSH of an allowed tag: the ledger's conditional UpdateItem (new, replayed, moved; out-of-order detection).
- PUSH of a tag the class does not allow: DescribeImages, then per `remediation` report, or untag with the
  quarantine tag added first when it is the image's last tag (BatchGetImage + PutImage + BatchDeleteImage),
  notification claimed in the ledger (PutItem) and published (SNS Publish).
- PUSH that moves a protected tag, `revert`: DescribeImages, quarantine tag for the pushed image if it would be
  left untagged, the tag pointed back (BatchGetImage + PutImage per digest), notification, history PutItem.
  `report` / `untag`: notification, and the ledger follows the move (TransactWriteItems).
- Push by digest only (conditional PutItem), DELETE (conditional UpdateItem).
- CloudTrail CreateRepository: DescribeRepositories, PutImageTagMutability on drift, notification.

Left out: scheduled sweeps, DeleteRepository and other ECR actions (answered `skipped` like anything unknown),
notification routes (`[[notify.route]]`, WARDEN_TOPICS) and formats other than `standard`, SNS size limits,
the Rust policy validator (the policy is trusted), event validation beyond the fields used, and Lambda error
classification (an exception fails the invocation).
"""

import warden_peer as w

FUNCTION = "tag-guard"


def handler(event, context=None):
    outcome, before = w.start(FUNCTION, event)
    source, detail_type, detail = event.get("source"), event.get("detail-type"), event.get("detail") or {}
    if source == "aws.ecr" and detail_type == "ECR Image Action":
        action = detail.get("action-type")
        outcome["event"] = f"ECR Image Action {action}"
        if action == "PUSH":
            on_push(event, detail, outcome)
        elif action == "DELETE":
            on_delete(event, detail, outcome)
        else:
            w.skipped(outcome, f"`{action}` does not change tags")
    elif source == "aws.ecr" and detail_type == "AWS API Call via CloudTrail" and detail.get("eventName") == "CreateRepository":
        outcome["event"] = "CloudTrail CreateRepository"
        on_create_repository(event, detail, outcome)
    else:
        w.skipped(outcome, f"unknown event `{source}` / `{detail_type}`")
    return w.finish(outcome, before)


def on_push(event, detail, outcome):
    if detail.get("result") != "SUCCESS":
        return w.skipped(outcome, f"push result is `{detail.get('result')}`, not SUCCESS")
    repository, digest, tag = detail["repository-name"], detail["image-digest"], detail.get("image-tag")
    cls, why = w.managed_class(repository)
    if cls is None:
        return w.skipped(outcome, why)
    w.for_class(outcome, cls, repository, digest, [tag] if tag else [])
    at, event_id = event.get("time", ""), event["id"]
    if tag is None:
        new = w.put_if_absent({"pk": w.s(f"IMAGE#{repository}@{digest}"), "sk": w.s("PUSHED"),
                               "repository": w.s(repository), "digest": w.s(digest), "at": w.s(at),
                               "event_id": w.s(event_id)})
        outcome["decision"] = "recorded"
        outcome["reasons"].append("pushed by digest only" + ("" if new else " (already recorded)"))
        return
    rules = cls.tags
    if rules:
        if cls.is_own_tag(tag):
            outcome["decision"] = "recorded"
            outcome["reasons"].append(f"`{tag}` is a quarantine or promotion tag ecr-warden adds itself")
            return
        if not cls.is_allowed(tag):
            reason = f"tag `{tag}` matches none of the allowed patterns: " + ", ".join(
                p.source for p in rules["allowed"])
            current = w.describe_image(repository, {"imageTag": tag})
            if current == "no-repository":
                return w.skipped(outcome, "the repository no longer exists")
            return carry_out(event, outcome, cls, *remedy_not_allowed(rules, tag, digest, reason, current),
                             kind="tag-not-allowed")

    observation, pointer = w.record_push(repository, tag, digest, at, event_id)
    protected = bool(rules) and cls.is_protected(tag)
    if observation in ("new", "unchanged"):
        state = "recorded" if observation == "new" else "already recorded"
        return carry_out(event, outcome, cls, "conforming", [f"`{tag}` {state} at {digest}"], [], False)
    if observation == "moved" and not protected:
        w.accept_move(repository, tag, pointer, digest, at, event_id)
        return carry_out(event, outcome, cls, "tag-moved", [f"`{tag}` moved from {pointer['digest']} to {digest}"],
                         [], False)
    if observation == "newer" and not (protected and pointer["digest"] != digest):
        return carry_out(event, outcome, cls, "skipped", [
            f"the ledger already holds a later push of `{tag}` ({pointer['digest']} at {pointer['since']})"], [], False)
    # A protected tag moved: `moved_to` is where it points now, `restore` where it must point again.
    moved_to, restore = (digest, pointer["digest"]) if observation == "moved" else (pointer["digest"], digest)
    reasons = [f"protected tag `{tag}` moved from {restore} to {moved_to}"]
    if observation == "newer":
        reasons.append("detected from an event delivered out of order")
    if rules["remediation"] != "revert":
        reasons.append(f"remediation is `{rules['remediation']}`: the move is reported, not reverted")
        if observation == "moved":
            w.accept_move(repository, tag, pointer, digest, at, event_id)
        return carry_out(event, outcome, cls, "protected-tag-moved", reasons, [], True, kind="protected-tag-moved")
    revert(event, outcome, cls, tag, reasons, moved_to, restore, observation, pointer)


def remedy_not_allowed(rules, tag, digest, reason, current):
    """(verdict, reasons, steps, notify) for a tag that is not allowed; `current` is `(digest, tags)` or None."""
    if current is None:
        return "skipped", [f"tag `{tag}` no longer exists (already removed)"], [], False
    if current[0] != digest:
        return "skipped", [f"tag `{tag}` has moved on to {current[0]} since this push; that push is checked on its own"], [], False
    if rules["remediation"] == "report":
        return "not-allowed", [reason, "remediation is `report`: the tag is left in place"], [], True
    remove = ("remove-tag", tag, digest)
    if any(t != tag for t in current[1]):
        return "not-allowed", [reason], [remove], True
    if rules["quarantine"] is None:
        return "not-allowed", [reason, f"`{tag}` is the image's only tag and quarantine is disabled: the tag is left in place"], [], True
    try:
        quarantine = rules["quarantine"].render(tag, digest)
    except ValueError as why:
        return "not-allowed", [reason, f"`{tag}` is the image's only tag and no quarantine tag can be made ({why}): the tag is left in place"], [], True
    return "not-allowed", [reason, f"`{tag}` is the image's only tag: it stays reachable as `{quarantine}`"], [
        ("add-tag", quarantine, digest), remove], True


def revert(event, outcome, cls, tag, reasons, moved_to, restore, observation, pointer):
    repository, rules = outcome["repository"], cls.tags
    current = w.describe_image(repository, {"imageTag": tag})
    if current == "no-repository":
        return w.skipped(outcome, "the repository no longer exists")
    steps = []
    if current is None:
        steps = [("point-tag", tag, restore)]
    elif current[0] == moved_to:
        if not any(t != tag for t in current[1]) and rules["quarantine"]:
            try:
                steps.append(("add-tag", rules["quarantine"].render(tag, moved_to), moved_to))
            except ValueError:
                pass
        steps.append(("point-tag", tag, restore))
    if not steps:
        outcome["decision"] = "skipped"
        outcome["reasons"].append(
            f"`{tag}` already points at {restore} again (reverted before)" if current[0] == restore
            else f"`{tag}` has moved on to {current[0]}; that push is checked on its own")
        return
    carry_out(event, outcome, cls, "protected-tag-moved", reasons, steps, True, kind="protected-tag-moved")
    if w.DRY_RUN:
        return
    reverted = all(a["result"] in ("done", "already-done") for a in outcome["actions"])
    at, event_id = event.get("time", ""), event["id"]
    if reverted and observation == "newer":
        w.accept_move(repository, tag, pointer, restore, at, event_id)
    what, detail = (("reverted", f"pushed here, moved back to {restore} by tag-guard") if reverted
                    else ("revert-failed", f"pushed here; moving back to {restore} failed"))
    w.DYNAMODB.put_item(TableName=w.LEDGER_TABLE, Item=w.history_item(
        f"TAG#{repository}:{tag}", at, what, moved_to, detail, event_id))


def on_delete(event, detail, outcome):
    repository, digest, tag = detail["repository-name"], detail.get("image-digest", ""), detail.get("image-tag")
    cls, why = w.managed_class(repository)
    if cls is None:
        return w.skipped(outcome, why)
    if tag is None:
        return w.skipped(outcome, "image deleted by digest: no tag to record")
    w.for_class(outcome, cls, repository, digest, [tag])
    outcome["decision"] = "recorded"
    try:
        w.DYNAMODB.update_item(
            TableName=w.LEDGER_TABLE, Key={"pk": w.s(f"TAG#{repository}:{tag}"), "sk": w.s("CURRENT")},
            UpdateExpression="SET deleted_at = if_not_exists(deleted_at, :t)", ConditionExpression="digest = :d",
            ExpressionAttributeValues={":d": w.s(digest), ":t": w.s(event.get("time", ""))})
        outcome["reasons"].append(f"`{tag}` marked deleted in the ledger")
    except w.ClientError as e:
        if w.error_code(e) != "ConditionalCheckFailedException":
            raise
        outcome["reasons"].append(f"the ledger does not hold `{tag}` at {digest}; nothing to mark")


def on_create_repository(event, detail, outcome):
    if detail.get("errorCode"):
        return w.skipped(outcome, f"CreateRepository failed ({detail['errorCode']}): no repository was created")
    repository = (detail.get("requestParameters") or {}).get("repositoryName", "")
    cls, why = w.managed_class(repository)
    if cls is None:
        return w.skipped(outcome, why)
    if not cls.tags:
        return w.skipped(outcome, f"class `{cls.name}` declares no tag rules")
    try:
        found = w.ECR.describe_repositories(repositoryNames=[repository])["repositories"]
    except w.ClientError as e:
        if w.error_code(e) != "RepositoryNotFoundException":
            raise
        found = []
    if not found:
        return w.skipped(outcome, f"repository {repository} no longer exists")
    observed = (found[0].get("imageTagMutability", "MUTABLE"),
                tuple(sorted({f["filter"] for f in found[0].get("imageTagMutabilityExclusionFilters", [])})))
    desired, rules = cls.tags["mutability"], cls.tags
    w.for_class(outcome, cls, repository)
    show = lambda m: m[0] + (f" [{', '.join(m[1])}]" if m[1] else "")
    if observed == desired:
        return carry_out(event, outcome, cls, "settings-ok", [f"tag mutability is {show(desired)}"], [], False)
    reasons = [f"tag mutability is {show(observed)}, class requires {show(desired)}"]
    steps = [("set-mutability", desired, None)] if rules["remediation"] != "report" else []
    if not steps:
        reasons.append("remediation is `report`: the setting is left as it is")
    carry_out(event, outcome, cls, "settings-drift", reasons, steps, True, kind="tag-mutability-drift")


def carry_out(event, outcome, cls, verdict, reasons, steps, notify, kind=""):
    """Carries out a decision, fills the outcome, and notifies when the decision says so."""
    outcome["decision"] = verdict
    outcome["reasons"].extend(reasons)
    outcome["actions"] = w.execute(outcome["repository"], steps)
    if notify:
        failed = any(a["result"] in ("failed", "gone") for a in outcome["actions"])
        severity = "critical" if verdict == "protected-tag-moved" or failed else "warning"
        word = ("dry-run" if w.DRY_RUN else "failed" if failed else "reported" if not outcome["actions"]
                else {"not-allowed": "untagged", "protected-tag-moved": "reverted"}.get(verdict, "fixed"))
        outcome["notified"] = w.send(w.notification(FUNCTION, event, outcome, kind, word, list(outcome["reasons"]),
                                                    severity))
