"""A minimal Lambda runtime loop for the Python peer, as the AWS Python runtime interface client runs a handler:
import the handler module named by `_HANDLER` (`module.function`, from LAMBDA_TASK_ROOT) — which is where boto3
is imported and the clients are built, as in any Python Lambda's init — then loop: GET the next invocation,
call the handler, POST its result (or the error) to the Runtime API at AWS_LAMBDA_RUNTIME_API. Standard
library only (urllib), like the runtime itself.
"""

import importlib
import json
import os
import sys
import time
import traceback
import urllib.request


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")

    def get_remaining_time_in_millis(self):
        return max(0, self.deadline_ms - int(time.time() * 1000))


def main():
    runtime = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT") or os.path.dirname(os.path.abspath(__file__)))
    module, function = os.environ["_HANDLER"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module), function)
    while True:
        try:
            with urllib.request.urlopen(f"{runtime}/next") as response:
                context = Context(response.headers)
                event = json.loads(response.read())
        except OSError:
            time.sleep(0.1)  # the Runtime API went away; Lambda would freeze or end the sandbox here
            continue
        try:
            body, path = json.dumps(handler(event, context)).encode(), "response"
        except Exception as error:  # reported to the Runtime API, as the runtime does
            traceback.print_exc()
            body, path = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}).encode(), "error"
        request = urllib.request.Request(f"{runtime}/{context.aws_request_id}/{path}", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).close()


if __name__ == "__main__":
    main()
