#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (oracle fidelity, cluster, live
# capture in network namespaces), and the operator against a real Kubernetes control plane built from Go
# modules (cached under ~/.cache/zeek-e2e; the first build takes long).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# A one-shot build gains nothing from incremental caches, and they double the target directory.
export CARGO_INCREMENTAL=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
cargo test --workspace

step "release build, as the Dockerfile's build stage does it"
cargo build --release --locked -p zeek-node -p zeek-operator

if [ -x e2e/controlplane.sh ]; then
  step "control plane for operator tests"
  e2e/controlplane.sh build
  state="$(mktemp -d)"
  trap 'e2e/controlplane.sh down "$state" || true' EXIT
  e2e/controlplane.sh up "$state"
  eval "$(e2e/controlplane.sh env "$state")"
  step "operator tests against the real API server"
  ZEEK_E2E_REQUIRED=1 cargo test -p zeek-operator -- --test-threads=1
  if [ -x e2e/scenario.sh ]; then
    step "end-to-end scenario"
    e2e/scenario.sh "$state"
  fi
fi
echo
echo "all tests passed"
