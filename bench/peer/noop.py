"""The baseline: a handler that imports nothing and calls nothing, so its init is what the Python runtime loop
(interpreter start, bootstrap.py) costs before boto3, the clients and the policy."""


def handler(event, context=None):
    return {"decision": "skipped", "aws-calls": {}}
