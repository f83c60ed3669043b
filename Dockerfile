# syntax=docker/dockerfile:1
# One build stage, two small runtime images:
#   docker build --target node     -t zeek-node:dev .
#   docker build --target operator -t zeek-operator:dev .
# scripts/test.sh builds the same binaries the same way (cargo build --release --locked -p zeek-node -p zeek-operator).

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpcap-dev libcap2-bin && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Optional: a profile from scripts/pgo.sh, trained on your own traffic (~11% less CPU for
# `zeek-node -r` on the benchmark mix). target/ is not sent to the build: copy it out first, e.g.
#   cp target/pgo/zeek-node.profdata . && docker build --build-arg PGO_PROFILE=zeek-node.profdata --target node .
# It must come from the same sources and Rust version as this build; functions it does not match (crates compiled
# with other features here) build without it. Measured on scripts/pgo.sh's own build only: there is no container
# engine on the development machines, so this path has not been built.
ARG PGO_PROFILE=
RUN if [ -n "$PGO_PROFILE" ]; then export RUSTFLAGS="-Cprofile-use=/src/$PGO_PROFILE"; fi \
 && cargo build --release --locked -p zeek-node -p zeek-operator \
 && install -D target/release/zeek-node /out/zeek-node \
 && install -D target/release/zeek-operator /out/zeek-operator \
 # Capture as a non-root user: the pod spec grants NET_RAW/NET_ADMIN, the file capabilities let the binary use them.
 && setcap cap_net_raw,cap_net_admin+eip /out/zeek-node

# The node image: manager, logger, proxy or worker (the operator picks the role per pod).
FROM debian:bookworm-slim AS node
RUN apt-get update && apt-get install -y --no-install-recommends libpcap0.8 ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/zeek --create-home zeek \
 && mkdir -p /var/log/zeek && chown zeek /var/log/zeek
COPY --from=build /out/zeek-node /usr/local/bin/zeek-node
USER 10001
ENTRYPOINT ["/usr/local/bin/zeek-node"]

# The operator image: a static-enough binary on distroless, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/zeek-operator /usr/local/bin/zeek-operator
USER 65532
ENTRYPOINT ["/usr/local/bin/zeek-operator"]
