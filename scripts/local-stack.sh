#!/usr/bin/env bash
# The local AWS stack: moto server (pinned) in a project venv, started on 127.0.0.1 on a free port and
# stopped by PID. Sourced by scripts/test and scripts/demo; nothing here needs the internet except the
# one-time `pip install` from PyPI.
#
#   source scripts/local-stack.sh
#   local_stack_start        # exports AWS_ENDPOINT_URL, AWS_REGION, test credentials, MOTO_PID
#   ...                      # anything using the AWS SDK now talks to moto
#   local_stack_stop         # also registered as an EXIT trap

MOTO_VERSION="5.2.5"
# For the tests' schema checks (the audit's SARIF against SARIF 2.1.0); moto brings it too, pinned here anyway.
JSONSCHEMA_VERSION="4.26.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WARDEN_VENV:-$REPO_ROOT/.venv}"
STATE_DIR="$REPO_ROOT/.local-stack"

# Creates the venv and installs moto (and any extra pip requirements given) once.
local_stack_install() {
  local stamp="$VENV/.moto-$MOTO_VERSION-jsonschema-$JSONSCHEMA_VERSION"
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  if [[ ! -f "$stamp" ]]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
      "jsonschema==$JSONSCHEMA_VERSION"
    touch "$stamp"
  fi
  if (($#)); then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

local_stack_start() {
  local_stack_install
  mkdir -p "$STATE_DIR"
  MOTO_PORT="${MOTO_PORT:-$(free_port)}"
  # moto_server with ECR's conditional tag removal (scripts/moto_server.py says why).
  "$VENV/bin/python" "$REPO_ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$STATE_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  trap local_stack_stop EXIT
  local ready=""
  for _ in $(seq 150); do
    if curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/data.json" >/dev/null 2>&1; then ready=1; break; fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [[ -z "$ready" ]]; then
    echo "moto server did not start; its log:" >&2
    cat "$STATE_DIR/moto.log" >&2
    return 1
  fi
  export MOTO_PORT MOTO_PID
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
  echo "moto server $MOTO_VERSION on $AWS_ENDPOINT_URL (pid $MOTO_PID)" >&2
}

local_stack_stop() {
  if [[ -n "${MOTO_PID:-}" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null
    wait "$MOTO_PID" 2>/dev/null
  fi
  MOTO_PID=""
}
