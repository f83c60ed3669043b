#!/usr/bin/env bash
# A real Kubernetes control plane for tests, built from Go modules.
#
#   e2e/controlplane.sh build [TOOL...]  build what is missing from the cache (idempotent)
#   e2e/controlplane.sh up STATE_DIR     start etcd, kube-apiserver, kube-controller-manager,
#                                        kube-scheduler and kwok (fake nodes) on 127.0.0.1
#   e2e/controlplane.sh env STATE_DIR    print `export KUBECONFIG=... PATH=...` (for eval)
#   e2e/controlplane.sh down STATE_DIR   stop what `up` started and remove STATE_DIR
#
# Binaries are cached outside the clone in ${ZEEK_E2E_CACHE:-$HOME/.cache/zeek-e2e}/<k8s-version>/bin.
# See e2e/README.md.
set -Eeuo pipefail
trap 'echo "[controlplane] error: \"$BASH_COMMAND\" failed (line $LINENO)" >&2' ERR

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULES_DIR="$E2E_DIR/controlplane"

# The Kubernetes version is the one controlplane/kubernetes/go.mod requires; its minor matches
# k8s-openapi's `v1_37` feature (shared/CRATES.md). The cache is keyed by it.
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$MODULES_DIR/kubernetes/go.mod")"
[[ "$K8S_VERSION" == v1.* ]] || { echo "[controlplane] error: no k8s.io/kubernetes version in $MODULES_DIR/kubernetes/go.mod" >&2; exit 1; }
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE_ROOT="${ZEEK_E2E_CACHE:-$HOME/.cache/zeek-e2e}"
CACHE_DIR="$CACHE_ROOT/$K8S_VERSION"
BIN_DIR="$CACHE_DIR/bin"

# Fake nodes that kwok manages.
NODE_COUNT="${ZEEK_E2E_NODES:-3}"

# tool name | wrapper module (under e2e/controlplane/) | Go package | module whose version keys the stamp
TOOLS=(
  "kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver|k8s.io/kubernetes"
  "kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager|k8s.io/kubernetes"
  "kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler|k8s.io/kubernetes"
  "kubectl|kubernetes|k8s.io/kubernetes/cmd/kubectl|k8s.io/kubernetes"
  "etcd|etcd|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3"
  "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|sigs.k8s.io/kwok"
  "kwokctl|kwok|sigs.k8s.io/kwok/cmd/kwokctl|sigs.k8s.io/kwok"
  "helm|helm|helm.sh/helm/v4/cmd/helm|helm.sh/helm/v4"
)

log() { printf '[controlplane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# step "description" command...: run a command, print the step and how long it took.
step() {
  local what="$1"; shift
  local start=$SECONDS
  log "$what ..."
  "$@"
  log "$what: done in $((SECONDS - start))s"
}

find_go() {
  if [[ -n "${GO:-}" ]]; then echo "$GO"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  die "no Go toolchain found (set GO=/path/to/go)"
}

# go_env COMMAND...: run COMMAND with the Go settings of every build here: static binaries, this Go
# toolchain only, no go.work, go.mod/go.sum as committed.
go_env() {
  CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" "$@"
}

# The version of MODULE required by the wrapper module in DIR, read from its go.mod.
module_version() {
  local dir="$1" module="$2"
  awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' \
    "$MODULES_DIR/$dir/go.mod"
}

# -ldflags for a tool: strip symbols, and stamp the version where the tool reports one.
tool_ldflags() {
  local name="$1" version="$2"
  local flags="-s -w"
  case "$name" in
    kube-*|kubectl)
      local minor="${version#v1.}"; minor="${minor%%.*}"
      local pkg
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$K8S_BUILD_DATE"
      done
      ;;
    kwok|kwokctl)
      # kwok's own version is already in its source; its default Kubernetes version is ours.
      flags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
      ;;
    helm)
      flags+=" -X helm.sh/helm/v4/internal/version.version=$version"
      flags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
      ;;
  esac
  echo "$flags"
}

# The stamp of a tool: what it is built from. A cached binary is reused while its stamp matches.
tool_stamp() {
  local dir="$1" pkg="$2" module="$3" version
  version="$(module_version "$dir" "$module")"
  [[ -n "$version" ]] || die "cannot read the version of $module from $MODULES_DIR/$dir/go.mod"
  echo "$pkg@$version"
}

is_cached() {
  local name="$1" stamp="$2" stamp_file="$BIN_DIR/.stamps/$1"
  [[ -x "$BIN_DIR/$name" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]
}

build_one() {
  local name="$1" dir="$2" pkg="$3" module="$4"
  local stamp version
  stamp="$(tool_stamp "$dir" "$pkg" "$module")"
  version="${stamp##*@}"
  local ldflags tmp
  ldflags="$(tool_ldflags "$name" "$version")"
  tmp="$BIN_DIR/.tmp-$name.$$"
  # One build at a time, at the lowest priority: the machine is shared.
  (
    cd "$MODULES_DIR/$dir"
    go_env nice -n 19 "$GO_BIN" build -trimpath -ldflags="$ldflags" -o "$tmp" "$pkg"
  ) || { rm -f "$tmp"; die "go build $pkg@$version failed"; }
  mv -f "$tmp" "$BIN_DIR/$name"
  echo "$stamp" > "$BIN_DIR/.stamps/$name"
}

# kwok plays "stages" (node ready, pod ready, pod delete...) from its configuration. The binary has
# none built in (kwokctl normally writes them), so take the default ones from the kwok module's source.
install_kwok_stages() {
  local version dir out="$CACHE_DIR/share/kwok-stages.yaml"
  version="$(module_version kwok sigs.k8s.io/kwok)"
  if [[ -f "$out" && "$(head -n 1 "$out")" == "# sigs.k8s.io/kwok@$version" ]]; then
    return
  fi
  log "kwok stages: copying the default stages from sigs.k8s.io/kwok@$version"
  dir="$(cd "$MODULES_DIR/kwok" && go_env "$GO_BIN" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  [[ -d "$dir/kustomize/stage" ]] || die "kwok module source not found (got '$dir')"
  mkdir -p "$(dirname "$out")"
  {
    echo "# sigs.k8s.io/kwok@$version"
    echo "# The stages kwokctl uses by default: node initialize + heartbeat with lease, pod ready/complete/delete."
    local f
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$dir/kustomize/stage/$f"
    done
  } > "$out.tmp"
  mv -f "$out.tmp" "$out"
}

have_binaries() {
  local entry name rest
  for entry in "${TOOLS[@]}"; do
    IFS='|' read -r name rest <<<"$entry"
    [[ -x "$BIN_DIR/$name" ]] || return 1
  done
  [[ -f "$CACHE_DIR/share/kwok-stages.yaml" ]]
}

cmd_build() {
  GO_BIN="$(find_go)"
  # The build date stamped into the Kubernetes binaries: the release's date, so builds are reproducible.
  K8S_BUILD_DATE="$(cd "$MODULES_DIR/kubernetes" &&
    go_env "$GO_BIN" list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
  mkdir -p "$BIN_DIR/.stamps"
  local wanted=("$@") entry name dir pkg module
  for entry in "${TOOLS[@]}"; do
    IFS='|' read -r name dir pkg module <<<"$entry"
    if ((${#wanted[@]})) && [[ " ${wanted[*]} " != *" $name "* ]]; then continue; fi
    if is_cached "$name" "$(tool_stamp "$dir" "$pkg" "$module")"; then
      log "$name: cached"
    else
      step "build $name" build_one "$name" "$dir" "$pkg" "$module"
    fi
  done
  if ((${#wanted[@]} == 0)) || [[ " ${wanted[*]} " == *" kwok "* ]]; then
    install_kwok_stages
  fi
  log "binaries are in $BIN_DIR"
  echo "$BIN_DIR"
}

# ---------------------------------------------------------------------------------------------
# up / down / env

# free_port VAR: pick a TCP port that nothing on this machine uses (listening or connected), below
# the ephemeral range so that outgoing connections do not take it meanwhile.
USED_PORTS=""
free_port() {
  local port
  if [[ -z "$USED_PORTS" ]]; then
    # Every local port in /proc/net/tcp{,6} (any state), e.g. "0100007F:1F90" -> 8080.
    USED_PORTS=$'\n'
    local addr
    while read -r _ addr _; do
      [[ "$addr" == *:* ]] && USED_PORTS+="$((16#${addr##*:}))"$'\n'
    done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  fi
  for _ in $(seq 500); do
    port=$((20000 + RANDOM % 12000))
    if [[ "$USED_PORTS" != *$'\n'"$port"$'\n'* ]]; then
      USED_PORTS+="$port"$'\n'
      printf -v "$1" '%s' "$port"
      return
    fi
  done
  die "no free port found"
}

# newkey FILE: an ECDSA P-256 private key (fast to make; every component accepts it).
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# PKI: a CA, the API server's serving certificate, client certificates for each component,
# the front proxy's CA and client certificate, and the service-account signing key pair.
gen_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    newkey ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=zeek-e2e-ca" -days 3650 -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    # name | subject | extendedKeyUsage | subjectAltName
    local certs=(
      "apiserver|/CN=kube-apiserver|serverAuth|IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
      "admin|/O=system:masters/CN=zeek-e2e-admin|clientAuth|"
      "kube-controller-manager|/CN=system:kube-controller-manager|clientAuth|"
      "kube-scheduler|/CN=system:kube-scheduler|clientAuth|"
      "kwok|/O=system:masters/CN=kwok-controller|clientAuth|"
    )
    local entry name subj eku san
    for entry in "${certs[@]}"; do
      IFS='|' read -r name subj eku san <<<"$entry"
      newkey "$name.key"
      openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        [[ -z "$san" ]] || echo "subjectAltName=$san"
      } > "$name.ext"
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -days 365 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
      rm -f "$name.csr" "$name.ext"
    done
    # The aggregation layer's front proxy: its own CA and client certificate.
    newkey front-proxy-ca.key
    openssl req -x509 -new -key front-proxy-ca.key -subj "/CN=zeek-e2e-front-proxy-ca" -days 3650 \
      -out front-proxy-ca.crt -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    newkey front-proxy-client.key
    openssl req -new -key front-proxy-client.key -subj "/CN=front-proxy-client" -out front-proxy-client.csr 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
      > front-proxy-client.ext
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
      -set_serial "0x$(openssl rand -hex 16)" -days 365 -extfile front-proxy-client.ext \
      -out front-proxy-client.crt 2>/dev/null
    rm -f front-proxy-client.csr front-proxy-client.ext
    # Service-account tokens: RSA (RS256), what token verifiers expect most.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

b64() { base64 -w0 < "$1"; }

# write_kubeconfig FILE CERT_NAME: a kubeconfig for the API server with the client certificate CERT_NAME.
write_kubeconfig() {
  local file="$1" name="$2" pki="$STATE/pki"
  install -m 600 /dev/null "$file"
  cat > "$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: zeek-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(b64 "$pki/$name.crt")
    client-key-data: $(b64 "$pki/$name.key")
contexts:
- name: zeek-e2e
  context:
    cluster: zeek-e2e
    user: $name
current-context: zeek-e2e
KUBECONFIG
}

# start NAME ARGS...: start $BIN_DIR/NAME in the background, logging to STATE/logs/NAME.log;
# STATE/pids/NAME.pid holds its pid and the binary's real path.
start() {
  local name="$1"; shift
  local exe
  exe="$(readlink -f "$BIN_DIR/$name")"
  "$exe" "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo "$! $exe" > "$STATE/pids/$name.pid"
}

# alive NAME: the process that `start NAME` started is still running (same pid, same binary).
alive() {
  local pid_file="$STATE/pids/$1.pid" pid exe running
  [[ -f "$pid_file" ]] || return 1
  read -r pid exe < "$pid_file"
  running="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  [[ "${running% (deleted)}" == "$exe" ]]
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMPONENT COMMAND...: poll COMMAND until it succeeds;
# fail early if COMPONENT's process dies.
wait_for() {
  local what="$1" timeout="$2" component="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    if [[ -n "$component" ]] && ! alive "$component"; then
      die "$component exited while waiting for $what; see $STATE/logs/$component.log"
    fi
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

kubectl_admin() { "$BIN_DIR/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

https_ok() { curl -sfk --max-time 2 "$1" | grep -qx ok; }

start_etcd() {
  start etcd \
    --name=zeek-e2e \
    --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="zeek-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true \
    --quota-backend-bytes=2147483648 \
    --log-level=warn
  wait_for "etcd health" 60 etcd curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local pki="$STATE/pki"
  start kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none \
    --cert-dir="$STATE/apiserver" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true \
    --profiling=false
  wait_for "kube-apiserver /readyz" 120 kube-apiserver kubectl_admin get --raw /readyz
}

start_controller_manager() {
  local pki="$STATE/pki"
  start kube-controller-manager \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --cert-dir="$STATE/kube-controller-manager" \
    --leader-elect=false \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" \
    --cluster-signing-key-file="$pki/ca.key" \
    --enable-hostpath-provisioner=true \
    --profiling=false
}

start_scheduler() {
  cat > "$STATE/kube-scheduler.yaml" <<YAML
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $STATE/kube-scheduler.kubeconfig
leaderElection:
  leaderElect: false
YAML
  start kube-scheduler \
    --config="$STATE/kube-scheduler.yaml" \
    --authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHEDULER_PORT" \
    --cert-dir="$STATE/kube-scheduler" \
    --profiling=false
}

start_kwok() {
  mkdir -p "$STATE/kwok-home"
  # HOME is private so that a ~/.kwok/kwok.yaml on the machine is not merged into the configuration.
  HOME="$STATE/kwok-home" start kwok \
    --kubeconfig="$STATE/kwok.kubeconfig" \
    --config="$CACHE_DIR/share/kwok-stages.yaml" \
    --manage-all-nodes=true \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --node-ip=127.0.0.1 \
    --cidr=10.244.0.0/16 \
    --node-lease-duration-seconds=40
}

# The fake nodes. Their InternalIPs are loopback addresses (127.0.1.N), so that anything that would
# talk to a "kubelet" (kubectl logs/exec) stays on this machine; pod IPs come from spec.podCIDR and
# are only data: nothing routes to them and nothing connects to them.
nodes_yaml() {
  local i name
  for ((i = 0; i < NODE_COUNT; i++)); do
    name="kwok-node-$i"
    cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
spec:
  podCIDR: 10.244.$i.0/24
  podCIDRs: [10.244.$i.0/24]
status:
  addresses:
  - type: InternalIP
    address: 127.0.1.$((i + 1))
  - type: Hostname
    address: $name
YAML
  done
}

# The default StorageClass: kube-controller-manager's in-tree hostPath provisioner (for tests only:
# it makes an empty directory /tmp/hostpath_pv/<uid> per volume), so that PersistentVolumeClaims,
# e.g. a StatefulSet's volumeClaimTemplates, bind and their pods get scheduled.
storage_class_yaml() {
  cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
YAML
}

# Print the last lines of every component's log (after a failure).
show_logs() {
  local f
  for f in "$STATE"/logs/*.log; do
    [[ -f "$f" ]] || continue
    log "--- last lines of $f"
    tail -n 15 "$f" >&2 || true
  done
}

cmd_up() {
  STATE="$1"
  local total_start=$SECONDS
  if [[ -f "$STATE/.zeek-e2e-controlplane" ]]; then
    local n
    for n in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
      alive "$n" && die "a control plane is already running in $STATE (run: $0 down $STATE)"
    done
  fi
  command -v openssl >/dev/null || die "openssl is required"
  command -v curl >/dev/null || die "curl is required"
  if ! have_binaries; then
    step "build missing binaries" cmd_build > /dev/null
  fi
  mkdir -p "$STATE"
  STATE="$(cd "$STATE" && pwd)"
  rm -rf "${STATE:?}/pki" "$STATE/etcd" "$STATE/logs" "$STATE/pids"
  mkdir -p "$STATE/logs" "$STATE/pids"
  touch "$STATE/.zeek-e2e-controlplane"

  SERVICE_CIDR="10.96.0.0/16"
  SERVICE_IP="10.96.0.1"
  free_port ETCD_PORT; free_port ETCD_PEER_PORT; free_port APISERVER_PORT
  free_port KCM_PORT; free_port SCHEDULER_PORT; free_port KWOK_PORT
  APISERVER_URL="https://127.0.0.1:$APISERVER_PORT"
  cat > "$STATE/ports" <<EOF_PORTS
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
APISERVER_URL=$APISERVER_URL
EOF_PORTS

  # On failure or interruption: show the logs and stop what was started (the logs stay until `down`).
  trap 'rc=$?; if ((rc != 0)); then show_logs; stop_all; log "up failed; logs are in $STATE/logs"; fi' EXIT
  trap 'exit 130' INT TERM

  step "certificates" gen_pki
  write_kubeconfig "$STATE/kubeconfig" admin
  write_kubeconfig "$STATE/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$STATE/kube-scheduler.kubeconfig" kube-scheduler
  write_kubeconfig "$STATE/kwok.kubeconfig" kwok

  step "etcd on 127.0.0.1:$ETCD_PORT" start_etcd
  step "kube-apiserver on $APISERVER_URL" start_apiserver
  step "start kube-controller-manager, kube-scheduler, kwok" \
    eval 'start_controller_manager; start_scheduler; start_kwok'
  step "create $NODE_COUNT kwok nodes and the default StorageClass" \
    eval '{ nodes_yaml; echo ---; storage_class_yaml; } | kubectl_admin create -f - > /dev/null'
  step "kube-controller-manager healthy" \
    wait_for "kube-controller-manager /healthz" 120 kube-controller-manager https_ok "https://127.0.0.1:$KCM_PORT/healthz"
  step "kube-scheduler healthy" \
    wait_for "kube-scheduler /healthz" 120 kube-scheduler https_ok "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  step "kwok healthy" \
    wait_for "kwok /healthz" 60 kwok curl -sf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
  step "nodes Ready" \
    wait_for "nodes Ready" 120 kwok kubectl_admin wait --for=condition=Ready node --all --timeout=5s
  # Pods can be created in a namespace only once its `default` ServiceAccount exists.
  step "default ServiceAccount" \
    wait_for "serviceaccount default/default" 120 kube-controller-manager kubectl_admin -n default get serviceaccount default
  trap - EXIT INT TERM

  log "control plane up in $((SECONDS - total_start))s: $APISERVER_URL, $NODE_COUNT nodes"
  log "kubeconfig: $STATE/kubeconfig; logs: $STATE/logs"
  log "use it with: eval \"\$($0 env $STATE)\""
}

# stop NAME: stop the process `start NAME` started (TERM, then KILL after 15s); only that pid, and
# only if it still runs the binary that was started.
stop() {
  local name="$1" pid_file="$STATE/pids/$1.pid" pid exe
  [[ -f "$pid_file" ]] || return 0
  read -r pid exe < "$pid_file"
  if alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      alive "$name" || break
      sleep 0.1
    done
    if alive "$name"; then
      log "$name (pid $pid) did not stop in 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pid_file"
}

stop_all() {
  local name
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop "$name"
  done
}

# The hostPath provisioner made an (empty) directory per volume; remove those that are still listed.
remove_volume_dirs() {
  local path
  for path in $(kubectl_admin get pv -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null || true); do
    if [[ "$path" =~ ^/tmp/hostpath_pv/[0-9a-f-]+$ ]]; then
      rm -rf -- "$path"
    fi
  done
  rmdir /tmp/hostpath_pv 2>/dev/null || true
}

cmd_down() {
  STATE="$1"
  if [[ ! -e "$STATE" ]]; then
    log "nothing to stop: $STATE does not exist"
    return
  fi
  STATE="$(cd "$STATE" && pwd)"
  [[ -f "$STATE/.zeek-e2e-controlplane" ]] || die "$STATE was not made by '$0 up': not touching it"
  if alive kube-apiserver; then
    step "remove the directories of hostPath volumes" remove_volume_dirs
  fi
  step "stop the control plane" stop_all
  rm -rf "${STATE:?}"
  log "removed $STATE"
}

cmd_env() {
  STATE="$(cd "$1" && pwd)"
  [[ -f "$STATE/kubeconfig" ]] || die "no kubeconfig in $STATE (run: $0 up $STATE)"
  # $PATH stays literal: it expands where the line is eval'ed.
  # shellcheck disable=SC2016
  printf 'export KUBECONFIG=%q PATH=%q:"$PATH"\n' "$STATE/kubeconfig" "$BIN_DIR"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    build) cmd_build "$@" ;;
    up) [[ $# -eq 1 ]] || die "usage: $0 up STATE_DIR"; cmd_up "$1" ;;
    down) [[ $# -eq 1 ]] || die "usage: $0 down STATE_DIR"; cmd_down "$1" ;;
    env) [[ $# -eq 1 ]] || die "usage: $0 env STATE_DIR"; cmd_env "$1" ;;
    *) die "usage: $0 build [TOOL...] | up STATE_DIR | down STATE_DIR | env STATE_DIR" ;;
  esac
}

# On one line, so that bash has read the whole script before it runs: editing the file while a
# long build runs does not change what runs.
main "$@"; exit
