# Helpers of e2e/scenario.sh (sourced): steps with durations, assertions, polling.
# shellcheck shell=bash

SCENARIO_STEPS=()   # "seconds|description" of each finished step, for the summary
CURRENT_STEP=""

say() { printf '[scenario] %s\n' "$*" >&2; }

fail() {
  say "FAILED${CURRENT_STEP:+ in step \"$CURRENT_STEP\"}: $*"
  exit 1
}

# step "description" FUNCTION [ARGS...]: run one step of the scenario and print how long it took.
step() {
  local what="$1"; shift
  local start=$SECONDS
  CURRENT_STEP="$what"
  say "▶ $what"
  "$@"
  local took=$((SECONDS - start))
  say "✓ $what (${took}s)"
  SCENARIO_STEPS+=("$took|$what")
  CURRENT_STEP=""
}

print_summary() {
  local entry total=0
  say "summary:"
  for entry in "${SCENARIO_STEPS[@]}"; do
    printf '[scenario]   %4ss  %s\n' "${entry%%|*}" "${entry#*|}" >&2
    total=$((total + ${entry%%|*}))
  done
  printf '[scenario]   %4ss  total\n' "$total" >&2
}

assert_eq() {
  local actual="$1" expected="$2" what="$3"
  [[ "$actual" == "$expected" ]] || fail "$what: expected '$expected', got '$actual'"
}

assert_contains() {
  local text="$1" needle="$2" what="$3"
  [[ "$text" == *"$needle"* ]] || fail "$what: expected to find '$needle' in:
$text"
}

assert_empty() {
  local text="$1" what="$2"
  [[ -z "$text" ]] || fail "$what: expected nothing, found:
$text"
}

# wait_until SECONDS "description" COMMAND [ARGS...]: run COMMAND every second until it succeeds.
wait_until() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
