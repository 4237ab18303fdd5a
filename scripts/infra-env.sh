#!/usr/bin/env bash
# The infrastructure tools, pinned, in .venv-infra/ (apart from moto's .venv: aws-sam-cli would move its boto3).
# Two venvs inside it, because checkov pins boto3 exactly (1.35.x) and aws-sam-cli needs boto3[crt] 1.43:
#   .venv-infra/sam       aws-sam-cli + cfn-lint (+ cargo-lambda and zig for `scripts/sam-build`)
#   .venv-infra/checkov   checkov
# Sourced by scripts/check-infra and scripts/sam-build. Installs once; a stamp file per pinned set makes the
# next run skip pip entirely.

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"
CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.17.1"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA_VENV="${WARDEN_INFRA_VENV:-$REPO_ROOT/.venv-infra}"

# SAM CLI: no telemetry; a region for `sam validate` (it never calls AWS with --lint); never a real profile.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# _infra_venv NAME STAMP PACKAGE... : creates .venv-infra/NAME and installs the packages unless STAMP exists.
_infra_venv() {
  local name="$1" stamp="$2"
  shift 2
  local venv="$INFRA_VENV/$name"
  if [[ -f "$venv/$stamp" ]]; then return 0; fi
  if [[ ! -x "$venv/bin/python" ]]; then python3 -m venv "$venv"; fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$venv/$stamp"
}

# Installs the validation tools (both venvs in parallel: a cold install is pip downloading and unpacking).
infra_install() {
  mkdir -p "$INFRA_VENV"
  local log_sam="$INFRA_VENV/install-sam.log" log_checkov="$INFRA_VENV/install-checkov.log"
  _infra_venv sam ".sam-$SAM_CLI_VERSION-cfn-lint-$CFN_LINT_VERSION" \
    "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION" >"$log_sam" 2>&1 &
  local sam_pid=$!
  _infra_venv checkov ".checkov-$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION" >"$log_checkov" 2>&1 &
  local checkov_pid=$!
  local failed=""
  wait "$sam_pid" || { failed=1; cat "$log_sam" >&2; }
  wait "$checkov_pid" || { failed=1; cat "$log_checkov" >&2; }
  if [[ -n "$failed" ]]; then
    echo "installing the infrastructure tools failed (logs above)" >&2
    return 1
  fi
}

# Adds cargo-lambda and zig (the ziglang wheel) to the SAM venv, for `sam build`.
infra_install_build_tools() {
  infra_install
  _infra_venv sam ".cargo-lambda-$CARGO_LAMBDA_VERSION-ziglang-$ZIGLANG_VERSION" \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
  local zig_dir
  zig_dir="$("$INFRA_VENV/sam/bin/python" -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')"
  # SAM finds `cargo-lambda` and `zig` on PATH; the wheel ships zig inside the package directory.
  export PATH="$INFRA_VENV/sam/bin:$zig_dir:$PATH"
}
