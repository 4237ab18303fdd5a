"""The audit's SARIF rendering against the SARIF 2.1.0 JSON schema (draft-07), so code-scanning views accept it.

The golden file shared/tests/golden/audit.sarif is what `render::sarif` writes for a registry showing every check
(the Rust test `golden_table_json_and_sarif_of_every_check` keeps the two identical). The schema is OASIS's
sarif-schema-2.1.0.json as the crates.io package serde-sarif 0.8.0 ships it (src/schema.json, sha256 af47e7b6...).
Run by scripts/test: python shared/tests/sarif/validate.py
"""

import hashlib
import json
import pathlib
import sys

import jsonschema

HERE = pathlib.Path(__file__).resolve().parent
SCHEMA = HERE / "sarif-schema-2.1.0.json"
SCHEMA_SHA256 = "af47e7b67f24efe74076621fd3a5fbe7398add9e84fe820c971219a385895cea"
GOLDEN = HERE.parent / "golden" / "audit.sarif"


def main() -> int:
    raw = SCHEMA.read_bytes()
    if hashlib.sha256(raw).hexdigest() != SCHEMA_SHA256:
        print(f"{SCHEMA.name} is not the published schema (sha256 differs)", file=sys.stderr)
        return 1
    schema = json.loads(raw)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    document = json.loads(GOLDEN.read_text())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for error in errors:
        print(f"{'/'.join(map(str, error.absolute_path))}: {error.message}", file=sys.stderr)
    # A broken document must fail: the validator is not vacuous.
    broken = dict(document, version="2.0.0")
    if validator.is_valid(broken):
        print("the schema accepted SARIF version 2.0.0: validation is not working", file=sys.stderr)
        return 1
    results = sum(len(run.get("results", [])) for run in document["runs"])
    print(f"{GOLDEN.name}: SARIF 2.1.0 schema {'invalid' if errors else 'valid'} ({results} results)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
