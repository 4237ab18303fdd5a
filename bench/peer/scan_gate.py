"""scan-gate in Python / boto3, the benchmark peer of functions/scan-gate (Lambda handler `scan_gate.handler`).

Faithful for what bench/run measures, with the same AWS calls per case as the Rust function:
- every scan event: one ledger Query (is the image a platform image of an index?).
- `ECR Image Scan`: the registry's scan is read again (DescribeImageScanFindings, all pages), never the event's
  counts (gate integrity). `Inspector2 Scan`: decided from the event's counts when the class's gate needs nothing
  else; otherwise Inspector ListFindings, all pages. Findings are filtered (fixable-only, EPSS, exploit),
  allowlisted (scope, expiry on the event's date) and counted.
- `Inspector2 Finding` on an ECR image: the image's ACTIVE findings are read and the image gated again.
- pass: the image's tags read fresh (DescribeImages), verdict and approvals in one TransactWriteItems, BatchGetImage
  once + PutImage per missing promotion tag, then a claimed notification (PutItem, Publish, UpdateItem); an
  immutable promotion tag held by another image is a claimed `promotion-failed` notification.
- fail: `on-failure = notify`: claimed notification; `demote`: DescribeImages, quarantine tag first if the
  promotion tags are the image's only tags, BatchDeleteImage per promotion tag, claimed notification.
- failed / unsupported scans: claimed `scan-failed` notification; scans in progress are skipped.

Left out: notification routes and formats other than `standard`, SNS size limits, the policy validator,
event validation beyond the fields used, findings on EC2 / Lambda beyond skipping them, and Lambda error
classification.
"""

import warden_peer as w

FUNCTION = "scan-gate"
INSPECTOR = w.client("inspector2")
DEFAULT_QUARANTINE = w.Template("quarantine-{digest12}")


def handler(event, context=None):
    outcome, before = w.start(FUNCTION, event)
    source, detail_type, detail = event.get("source"), event.get("detail-type"), event.get("detail") or {}
    if source == "aws.ecr" and detail_type == "ECR Image Scan":
        gate(event, outcome, "basic", detail["repository-name"].split(":repository/")[-1], detail.get("image-digest"),
             detail.get("image-tags", []), detail.get("finding-severity-counts", {}), detail.get("scan-status", ""))
    elif source == "aws.inspector2" and detail_type == "Inspector2 Scan":
        gate(event, outcome, "enhanced", detail["repository-name"].split(":repository/")[-1],
             detail.get("image-digest"), detail.get("image-tags", []), detail.get("finding-severity-counts", {}),
             detail.get("scan-status", ""))
    elif source == "aws.inspector2" and detail_type == "Inspector2 Finding":
        image = next((r["details"]["awsEcrContainerImage"] for r in detail.get("resources", [])
                      if r.get("type") == "AWS_ECR_CONTAINER_IMAGE"
                      and "awsEcrContainerImage" in (r.get("details") or {})), None)
        if image is None:
            w.skipped(outcome, "the finding is not about an ECR image")
        else:
            gate(event, outcome, "enhanced", image["repositoryName"], image["imageHash"], image.get("imageTags", []),
                 None, "ACTIVE")
    else:
        w.skipped(outcome, f"unknown event `{source}` / `{detail_type}`")
    return w.finish(outcome, before)


def scan_state(status, description=None):
    if status in ("COMPLETE", "ACTIVE", "INITIAL_SCAN_COMPLETE"):
        return "complete", None
    if status in ("IN_PROGRESS", "PENDING"):
        return "pending", None
    return "failed", f"scan status {status}" + (f": {description}" if description else "")


def gate(event, outcome, scanner, repository, digest, tags, counts, status):
    cls, why = w.managed_class(repository)
    if cls is None:
        return w.skipped(outcome, why)
    rules = cls.gate
    if rules is None:
        return w.skipped(outcome, f"class `{cls.name}` declares no gate")
    if not digest:
        return w.skipped(outcome, "the event names no image digest")
    w.for_class(outcome, cls, repository, digest, tags)
    state, reason = scan_state(status)
    if state == "pending":
        return w.skipped(outcome, f"scan status {status}: the completion event gates the image")
    if state == "failed":
        return unscanned(event, outcome, "scan-failed", reason)
    # Is the image a platform image of an index? (one Query of the index records, as scan-gate makes per scan event)
    w.DYNAMODB.query(TableName=w.LEDGER_TABLE, KeyConditionExpression="pk = :pk",
                     ExpressionAttributeValues={":pk": w.s(f"CHILD#{repository}@{digest}")})
    needs_findings = bool(rules["allow"]) or rules["fixable-only"] or rules["min-epss"] is not None or rules["exploitable-only"]
    reported = [w.SEVERITIES[w.SEVERITIES.index(k.upper())] if k.upper() in w.SEVERITIES else "UNDEFINED"
                for k in (counts or {}) if k.upper() != "TOTAL"]
    # Gate integrity: a basic scan's counts are the event's word; the registry's scan is read again before a
    # decision (so basic scans never take the counts shortcut).
    if scanner == "enhanced" and counts is not None and not needs_findings and all(s in reported for s in rules["max"]):
        totals = dict.fromkeys(w.SEVERITIES, 0)
        for key, count in counts.items():
            if key.upper() != "TOTAL":
                totals[key.upper() if key.upper() in w.SEVERITIES else "UNDEFINED"] += count
        result = evaluate(rules, totals, totals, [], [], [], [], 0, "event-counts")
    else:
        if scanner == "enhanced":
            findings = inspector_findings(repository, digest)
        else:
            lookup = ecr_findings(repository, digest)
            if lookup in ("not-scanned", "gone"):
                return (unscanned(event, outcome, "not-scanned", "no scan found for the image") if lookup == "not-scanned"
                        else w.skipped(outcome, "the image or repository no longer exists"))
            state, reason = scan_state(*lookup[:2])
            if state == "failed":
                return unscanned(event, outcome, "scan-failed", reason)
            if state == "pending":
                return w.skipped(outcome, "the scan is still running: its completion event gates the image")
            findings = lookup[2]
        result = evaluate_findings(rules, repository, findings, w.event_date(event))
    outcome["reasons"] = list(result["reasons"])
    if result["pass"]:
        promote(event, outcome, cls, rules, digest, tags)
    else:
        block(event, outcome, cls, rules, digest, result)
    outcome["gate"] = result


def ecr_findings(repository, digest):
    """`(status, description, findings)` from DescribeImageScanFindings (all pages), or why there are none."""
    status, description, findings, token = "", None, [], None
    while True:
        params = {"repositoryName": repository, "imageId": {"imageDigest": digest}, "maxResults": 1000}
        try:
            page = w.ECR.describe_image_scan_findings(**params, **({"nextToken": token} if token else {}))
        except w.ClientError as e:
            code = w.error_code(e)
            if code == "ScanNotFoundException":
                return "not-scanned"
            if code in ("RepositoryNotFoundException", "ImageNotFoundException"):
                return "gone"
            raise
        status = page.get("imageScanStatus", {}).get("status", status)
        description = page.get("imageScanStatus", {}).get("description", description)
        scan = page.get("imageScanFindings", {})
        for f in scan.get("findings", []):
            attribute = {a["key"]: a.get("value") for a in f.get("attributes", [])}
            findings.append({"id": f.get("name", "unnamed finding"), "severity": severity(f.get("severity")),
                             "package": attribute.get("package_name"), "installed-version": attribute.get("package_version"),
                             "link": f.get("uri")})
        for f in scan.get("enhancedFindings", []):
            details = f.get("packageVulnerabilityDetails", {})
            package = (details.get("vulnerablePackages") or [{}])[0]
            findings.append({"id": details.get("vulnerabilityId") or f.get("title", "unnamed finding"),
                             "severity": severity(f.get("severity")), "package": package.get("name"),
                             "installed-version": package.get("version"), "fixed-version": package.get("fixedInVersion"),
                             "fix-available": yes_no(f.get("fixAvailable")),
                             "exploit-available": yes_no(f.get("exploitAvailable")), "link": details.get("sourceUrl")})
        token = page.get("nextToken")
        if not token:
            return status, description, findings


def inspector_findings(repository, digest):
    """The image's ACTIVE Inspector findings (ListFindings, all pages)."""
    equals = lambda value: [{"comparison": "EQUALS", "value": value}]
    criteria = {"ecrImageRepositoryName": equals(repository), "ecrImageHash": equals(digest),
                "findingStatus": equals("ACTIVE")}
    findings, token = [], None
    while True:
        page = INSPECTOR.list_findings(filterCriteria=criteria, maxResults=100, **({"nextToken": token} if token else {}))
        for f in page.get("findings", []):
            details = f.get("packageVulnerabilityDetails", {})
            package = (details.get("vulnerablePackages") or [{}])[0]
            findings.append({
                "id": details.get("vulnerabilityId") or f.get("title") or f["findingArn"],
                "severity": "UNDEFINED" if f.get("severity") == "UNTRIAGED" else severity(f.get("severity")),
                "package": package.get("name"), "installed-version": package.get("version") or None,
                "fixed-version": package.get("fixedInVersion") or None,
                "fix-available": None if "fixAvailable" not in f else f["fixAvailable"] != "NO",
                "exploit-available": None if "exploitAvailable" not in f else f["exploitAvailable"] == "YES",
                "epss": (f.get("epss") or {}).get("score"), "link": details.get("sourceUrl")})
        token = page.get("nextToken")
        if not token:
            return findings


def severity(text):
    return (text or "").upper() if (text or "").upper() in w.SEVERITIES else "UNDEFINED"


def yes_no(value):
    return {"YES": True, "PARTIAL": True, "NO": False}.get(value)


def plural(n):
    return "1 finding" if n == 1 else f"{n} findings"


def evaluate(rules, before, after, blocking, allowlisted, expired, stale, filtered, evidence):
    reasons, passed = [], True
    for sev in w.SEVERITIES:
        if sev in rules["max"] and after[sev] > rules["max"][sev]:
            passed = False
            reasons.append(f"{sev}: {plural(after[sev])}, at most {rules['max'][sev]} allowed")
    if passed:
        reasons.append("within limits: " + ", ".join(f"{s} {after[s]}/{rules['max'][s]}" for s in w.SEVERITIES if s in rules["max"]))
    if filtered:
        reasons.append(f"{plural(filtered)} not counted (fixable / EPSS / exploit filters)")
    if allowlisted:
        reasons.append(f"{plural(len(allowlisted))} allowlisted")
    reasons += expired
    if stale:
        reasons.append(f"allowlist entries matching no finding (stale): {', '.join(stale)}")
    exceeded = [s for s in rules["max"] if after[s] > rules["max"][s]]
    return {"pass": passed, "evidence": evidence, "counts-before": before, "counts-after": after,
            "blocking": [f for f in blocking if f["severity"] in exceeded], "allowlisted": allowlisted,
            "expired": expired, "stale": stale, "reasons": reasons}


def evaluate_findings(rules, repository, findings, today):
    entries = {}
    for i, entry in enumerate(rules["allow"]):
        if not entry["repositories"] or w.any_match(entry["repositories"], repository):
            entries.setdefault(entry["id"].upper(), []).append(i)
    used, expired_hits = set(), set()
    before, after = dict.fromkeys(w.SEVERITIES, 0), dict.fromkeys(w.SEVERITIES, 0)
    counted, allowlisted, filtered = [], [], 0
    for f in findings:
        before[f["severity"]] += 1
        if ((rules["fixable-only"] and f.get("fix-available") is False)
                or (rules["min-epss"] is not None and f.get("epss") is not None and f["epss"] < rules["min-epss"])
                or (rules["exploitable-only"] and f.get("exploit-available") is False)):
            filtered += 1
            continue
        matching = entries.get(f["id"].upper(), [])
        live = next((i for i in matching if today <= rules["allow"][i]["expires"]), None)
        if live is not None:
            used.add(live)
            allowlisted.append(f"{f['id']} ({rules['allow'][live]['reason']})")
            continue
        expired_hits.update(matching)
        after[f["severity"]] += 1
        counted.append(f)
    counted.sort(key=lambda f: (w.SEVERITIES.index(f["severity"]), f["id"]))
    expired = [f"{e['id']} expired on {e['expires']}: it no longer applies"
               for i, e in enumerate(rules["allow"]) if i in expired_hits]
    stale = [e["id"] for i, e in enumerate(rules["allow"])
             if (not e["repositories"] or w.any_match(e["repositories"], repository)) and today <= e["expires"]
             and i not in used and i not in expired_hits]
    return evaluate(rules, before, after, counted, allowlisted, expired, stale, filtered, "findings")


def is_own_tag(cls, rules, tag):
    return any(t.matches(tag) for t in rules["promote"]) or bool(cls.tags and cls.is_own_tag(tag))


def unscanned(event, outcome, kind, reason):
    outcome["decision"] = kind
    outcome["reasons"].append(f"{reason}: the image is not promoted")
    outcome["notified"] = w.send(w.notification(FUNCTION, event, outcome, kind, "not-promoted",
                                                list(outcome["reasons"]), "warning"))


def promote(event, outcome, cls, rules, digest, tags):
    sources = [t for t in tags if not is_own_tag(cls, rules, t)]
    promotion = []
    for template in rules["promote"]:
        for source in (sources if "{tag}" in template.source else [""]):
            try:
                tag = template.render(source, digest)
            except ValueError as why:
                outcome["reasons"].append(f"promotion tag from `{template.source}` skipped: {why}")
                continue
            if tag not in promotion:
                promotion.append(tag)
    # The image's tags read fresh (an event's list may be stale), and the verdict and approval recorded in one
    # transaction before the tag is added, as scan-gate does.
    current = w.describe_image(outcome["repository"], {"imageDigest": digest})
    if not isinstance(current, tuple):
        outcome["decision"] = "skipped"
        outcome["reasons"].append("the image was deleted since it was scanned: nothing to promote")
        return
    tags = current[1]
    approvals = [{"Put": {"TableName": w.LEDGER_TABLE, "Item": {
        "pk": w.s(f"APPROVAL#{outcome['repository']}:{t}"), "sk": w.s("CURRENT"), "digest": w.s(digest),
        "event_id": w.s(event["id"])}}} for t in promotion if t not in tags]
    w.DYNAMODB.transact_write_items(TransactItems=[{"Update": {
        "TableName": w.LEDGER_TABLE, "Key": {"pk": w.s(f"VERDICT#{outcome['repository']}@{digest}"), "sk": w.s("LATEST")},
        "UpdateExpression": "SET verdict = :pass, event_id = :event",
        "ExpressionAttributeValues": {":pass": w.s("pass"), ":event": w.s(event["id"])}}}] + approvals)
    outcome["actions"] = w.execute(outcome["repository"], [("add-tag", t, digest) for t in promotion if t not in tags])
    results = [a["result"] for a in outcome["actions"]]
    if "gone" in results:
        outcome["decision"] = "skipped"
        outcome["reasons"].append("the image was deleted since it was scanned: nothing to promote")
        return
    failed, changed = "failed" in results, any(r in ("done", "dry-run") for r in results)
    if failed:
        outcome["decision"] = "promotion-failed"
        outcome["notified"] = w.send(w.notification(FUNCTION, event, outcome, "promotion-failed", "failed",
                                                    list(outcome["reasons"]), "critical"))
    elif changed:
        outcome["decision"] = "promoted"
        reasons = [f"passed the gate: promoted as {', '.join(promotion)}"] + outcome["reasons"]
        outcome["notified"] = w.send(w.notification(FUNCTION, event, outcome, "promoted", "promoted", reasons, "info"))
    else:
        outcome["decision"] = "already-promoted"
        outcome["reasons"].append(f"already promoted as {', '.join(promotion)}")


def block(event, outcome, cls, rules, digest, result):
    repository = outcome["repository"]
    reasons = list(result["reasons"]) + [describe(f) for f in result["blocking"]]
    kind, sev, outcome["decision"] = "gate-failed", "warning", "blocked"
    is_promotion = lambda t: any(p.matches(t) for p in rules["promote"])
    if rules["on-failure"] == "demote":
        current = w.describe_image(repository, {"imageDigest": digest})
        if not isinstance(current, tuple):
            outcome["reasons"].append("the image no longer exists")
            return
        promoted = [t for t in current[1] if is_promotion(t)]
        steps, problem = [], None
        if promoted and len(promoted) == len(current[1]):
            quarantine = (cls.tags or {}).get("quarantine") or DEFAULT_QUARANTINE
            try:
                steps.append(("add-tag", quarantine.render(promoted[0], digest), digest))
            except ValueError as why:
                problem = f"the promotion tags are the image's only tags and no quarantine tag can be made ({why})"
        if problem:
            reasons.insert(0, f"a promoted image no longer passes the gate, but {problem}: it stays promoted")
            sev = "critical"
        elif promoted:
            outcome["actions"] = w.execute(repository, steps + [("remove-tag", t, digest) for t in promoted])
            outcome["decision"], kind, sev = "demoted", "demoted", "critical"
            reasons.insert(0, "a promoted image no longer passes the gate: its promotion tags are removed")
    elif any(is_promotion(t) for t in outcome["tags"]):
        reasons.insert(0, "a promoted image no longer passes the gate (on-failure = notify: it stays promoted)")
        sev = "critical"
    word = "demoted" if outcome["decision"] == "demoted" else "blocked"
    outcome["notified"] = w.send(w.notification(FUNCTION, event, outcome, kind, word, reasons, sev))


def describe(f):
    line = f"{f['severity']} {f['id']}"
    if f.get("package"):
        line += f" in {f['package']}" + (f" {f['installed-version']}" if f.get("installed-version") else "")
        if f.get("fixed-version"):
            line += f" (fixed in {f['fixed-version']})"
        elif f.get("fix-available") is False:
            line += " (no fix available)"
    return line + (f" {f['link']}" if f.get("link") else "")
