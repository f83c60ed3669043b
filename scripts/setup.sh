#!/usr/bin/env bash
# Installs what building and testing zeek-node needs on a fresh Debian machine (idempotent, quick when
# everything is already there). Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

need_pkgs=()
have() { dpkg -s "$1" >/dev/null 2>&1; }
# build-essential: the linker rustc calls and the C compiler the mimalloc and ring crates build with.
for pkg in build-essential pkg-config libpcap-dev tcpreplay libndpi-bin iproute2 nats-server python3 git curl ca-certificates openssl; do
  have "$pkg" || need_pkgs+=("$pkg")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
