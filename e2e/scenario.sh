#!/usr/bin/env bash
# The user's first hour, end to end, on a real control plane (e2e/controlplane.sh up STATE_DIR):
#
#   e2e/scenario.sh STATE_DIR
#
# helm install the chart into a fresh namespace; run the operator with the chart's ServiceAccount token (out
# of cluster: the control plane's nodes are kwok fakes, so the Deployment's pods run nothing; see
# e2e/scenario/values.yaml); kubectl apply the examples; wait for Ready; kubectl get zc; kubectl scale; a bad
# spec is refused; helm upgrade rolls the operator; kubectl delete cleans up; helm uninstall leaves nothing.
# Every step prints its duration. Everything listens on 127.0.0.1 only. See e2e/README.md.
set -Eeuo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
# shellcheck source=e2e/scenario/lib.sh
source "$E2E_DIR/scenario/lib.sh"

[[ $# -eq 1 ]] || { echo "usage: $0 STATE_DIR (a control plane started by e2e/controlplane.sh up)" >&2; exit 2; }
STATE="$(cd "$1" && pwd)"
[[ -f "$STATE/ports" && -f "$STATE/kubeconfig" ]] || fail "$STATE is not a running control plane (e2e/controlplane.sh up)"
eval "$("$E2E_DIR/controlplane.sh" env "$STATE")"
APISERVER_URL="$(sed -n 's/^APISERVER_URL=//p' "$STATE/ports")"

CHART="$ROOT/charts/zeek-operator"
OPERATOR_BIN="$ROOT/target/release/zeek-operator"
RELEASE=zeek-operator        # the chart's full name is then zeek-operator too
SUFFIX="$(date +%s)-$$"
OPERATOR_NS="zeek-system-$SUFFIX"
APPS_NS="zeek-apps-$SUFFIX"
WORK="$STATE/scenario-$SUFFIX"
OPERATOR_LOG="$WORK/operator.log"
OPERATOR_IDENTITY="scenario-local-$$"
OPERATOR_PID=""
OPERATOR_PORT=""
mkdir -p "$WORK"

# --- the local operator -------------------------------------------------------------------------------

# The Deployment's container args and one env value, as the chart rendered them.
deployment_args() {
  kubectl -n "$OPERATOR_NS" get deployment "$RELEASE" -o json | jq -r '.spec.template.spec.containers[0].args[]'
}
deployment_env() {
  kubectl -n "$OPERATOR_NS" get deployment "$RELEASE" -o json |
    jq -r --arg name "$1" '.spec.template.spec.containers[0].env[]? | select(.name == $name) | .value // empty'
}

# A kubeconfig that authenticates as the chart's ServiceAccount (a bound token, like the one a pod gets).
write_service_account_kubeconfig() {
  local token
  token="$(kubectl -n "$OPERATOR_NS" create token "$RELEASE" --duration=2h)"
  install -m 600 /dev/null "$WORK/operator.kubeconfig"
  cat > "$WORK/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: zeek-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 < "$STATE/pki/ca.crt")
users:
- name: $RELEASE
  user:
    token: $token
contexts:
- name: zeek-e2e
  context: {cluster: zeek-e2e, user: $RELEASE, namespace: $OPERATOR_NS}
current-context: zeek-e2e
EOF
}

# Starts target/release/zeek-operator as the Deployment's pod would run: its args and WATCH_NAMESPACE, the
# downward-API variables, the ServiceAccount's credentials; only the HTTP address moves to 127.0.0.1.
start_operator() {
  local args=() arg watch
  while IFS= read -r arg; do
    [[ "$arg" == --http-addr=* ]] || args+=("$arg")
  done < <(deployment_args)
  watch="$(deployment_env WATCH_NAMESPACE)"
  OPERATOR_PORT="$(free_port)"
  say "  zeek-operator ${args[*]} --http-addr=127.0.0.1:$OPERATOR_PORT${watch:+ (WATCH_NAMESPACE=$watch)}"
  env -u WATCH_NAMESPACE KUBECONFIG="$WORK/operator.kubeconfig" POD_NAMESPACE="$OPERATOR_NS" \
    POD_NAME="$OPERATOR_IDENTITY" ${watch:+WATCH_NAMESPACE="$watch"} \
    "$OPERATOR_BIN" "${args[@]}" --http-addr="127.0.0.1:$OPERATOR_PORT" >> "$OPERATOR_LOG" 2>&1 &
  OPERATOR_PID=$!
  wait_until 60 "the operator's /readyz" curl -fsS "http://127.0.0.1:$OPERATOR_PORT/readyz"
  wait_until 60 "the operator to hold the chart's Lease" lease_held_by_local_operator
}

lease_held_by_local_operator() {
  [[ "$(kubectl -n "$OPERATOR_NS" get lease "$RELEASE" -o jsonpath='{.spec.holderIdentity}')" == "$OPERATOR_IDENTITY" ]]
}

# SIGTERM (as Kubernetes stops a pod), then wait for the process to release its Lease and exit.
stop_operator() {
  [[ -n "$OPERATOR_PID" ]] || return 0
  kill -TERM "$OPERATOR_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 20))
  while kill -0 "$OPERATOR_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -KILL "$OPERATOR_PID" 2>/dev/null || true
  wait "$OPERATOR_PID" 2>/dev/null || true
  OPERATOR_PID=""
}

on_exit() {
  local rc=$?
  stop_operator
  if ((rc != 0)); then
    say "the operator's log (last 40 lines of $OPERATOR_LOG):"
    tail -n 40 "$OPERATOR_LOG" 2>/dev/null | sed 's/^/[operator] /' >&2 || true
    say "ZeekClusters and events in $APPS_NS:"
    kubectl -n "$APPS_NS" get zc -o wide >&2 2>/dev/null || true
    kubectl -n "$APPS_NS" events 2>/dev/null | tail -n 20 >&2 || true
    say "left for a look: namespaces $OPERATOR_NS and $APPS_NS, files in $WORK"
  fi
}
trap on_exit EXIT
trap 'fail "\"$BASH_COMMAND\" failed (line $LINENO)"' ERR

# --- queries -------------------------------------------------------------------------------------------

zc_field() { kubectl -n "$APPS_NS" get zc "$1" -o jsonpath="$2"; }

cluster_is_ready() {
  [[ "$(zc_field "$1" '{.status.conditions[?(@.type=="Ready")].status}')" == True &&
     "$(zc_field "$1" '{.status.observedGeneration}')" == "$(zc_field "$1" '{.metadata.generation}')" ]]
}

proxies_ready_are() {
  [[ "$(zc_field "$1" '{.status.proxies.ready}')" == "$2" ]] && cluster_is_ready "$1"
}

# Names of the objects of the given kinds that still carry cluster NAME's instance label.
owned_objects() {
  kubectl -n "$APPS_NS" get statefulsets,daemonsets,services,configmaps,secrets,poddisruptionbudgets,pods \
    -l "app.kubernetes.io/instance=$1" -o name 2>/dev/null
}
nothing_owned_left() { [[ -z "$(owned_objects "$1")" ]]; }

# Objects of the Helm release: those with its instance label, and any named after it (kubectl prints "No
# resources found" on stderr).
release_objects() {
  kubectl get clusterroles,clusterrolebindings -l "app.kubernetes.io/instance=$RELEASE" -o name 2>/dev/null
  local ns
  for ns in "$OPERATOR_NS" "$APPS_NS"; do
    kubectl -n "$ns" get deployments,replicasets,pods,services,serviceaccounts,leases,roles,rolebindings,configmaps,secrets \
      -l "app.kubernetes.io/instance=$RELEASE" -o name 2>/dev/null
    kubectl -n "$ns" get leases,serviceaccounts,deployments,services,roles,rolebindings -o name 2>/dev/null |
      grep -F "/$RELEASE" || true
  done
  kubectl get clusterroles,clusterrolebindings -o name | grep -F "/$RELEASE" || true
}
no_release_objects_left() { [[ -z "$(release_objects)" ]]; }

# --- the steps -----------------------------------------------------------------------------------------

build_operator() {
  # Exactly the Dockerfile's build stage (the same package set, so scripts/test.sh's release build is reused
  # instead of rebuilt with other feature unification).
  (cd "$ROOT" && cargo build --release --locked -p zeek-node -p zeek-operator)
  [[ -x "$OPERATOR_BIN" ]] || fail "no $OPERATOR_BIN after the build"
}

lint_chart() {
  helm lint --strict "$CHART"
  helm lint --strict "$CHART" --set watchNamespace=team-a --set replicaCount=2 --set metrics.serviceMonitor.enabled=true --set metrics.podMonitor.enabled=true --set metrics.prometheusRule.enabled=true
  cmp "$CHART/crds/zeekcluster.yaml" "$ROOT/crds/zeekcluster.yaml" ||
    fail "charts/zeek-operator/crds/zeekcluster.yaml differs from crds/zeekcluster.yaml (cp one onto the other)"
}

install_chart() {
  kubectl create namespace "$APPS_NS"
  helm install "$RELEASE" "$CHART" --namespace "$OPERATOR_NS" --create-namespace \
    --values "$E2E_DIR/scenario/values.yaml" --wait --timeout 3m | tee "$WORK/helm-install.txt"
  assert_contains "$(cat "$WORK/helm-install.txt")" "kubectl apply -n default -f examples/minimal.yaml" "the chart's NOTES"
  assert_eq "$(kubectl get crd zeekclusters.zeek.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" \
    True "the ZeekCluster CRD is established"
  assert_eq "$(kubectl -n "$OPERATOR_NS" get deployment "$RELEASE" -o jsonpath='{.status.readyReplicas}')" 2 \
    "the Deployment's (kwok) pods are ready"
}

# can_i USER VERB RESOURCE [FLAGS...]: kubectl auth can-i as USER in the clusters' namespace.
can_i() {
  local user="$1"; shift
  [[ "$(kubectl auth can-i "$@" --as "$user" -n "$APPS_NS" 2>/dev/null)" == yes ]]
}

# The chart's aggregated ClusterRoles give namespace users ZeekCluster rights through the built-in roles.
aggregated_roles_reach_users() {
  kubectl -n "$APPS_NS" create rolebinding scenario-viewer --clusterrole=view --user=viewer
  kubectl -n "$APPS_NS" create rolebinding scenario-editor --clusterrole=edit --user=editor
  wait_until 60 "view to aggregate ZeekCluster reads" can_i viewer list zeekclusters.zeek.io
  wait_until 60 "edit to aggregate ZeekCluster scaling" can_i editor update zeekclusters.zeek.io --subresource=scale
  can_i editor create zeekclusters.zeek.io || fail "edit cannot create ZeekClusters"
  ! can_i viewer update zeekclusters.zeek.io --subresource=scale || fail "view can scale ZeekClusters"
  ! can_i viewer delete zeekclusters.zeek.io || fail "view can delete ZeekClusters"
}

run_operator_out_of_cluster() {
  write_service_account_kubeconfig
  local whoami
  whoami="$(KUBECONFIG="$WORK/operator.kubeconfig" kubectl auth whoami -o jsonpath='{.status.userInfo.username}')"
  assert_eq "$whoami" "system:serviceaccount:$OPERATOR_NS:$RELEASE" "the token's identity"
  # Least privilege, seen from the token: what the operator does not do, it may not do.
  local can verb_resource
  for verb_resource in "create pods" "delete statefulsets" "create deployments" "delete secrets" "update zeekclusters.zeek.io"; do
    # shellcheck disable=SC2086 # two words on purpose
    can="$(KUBECONFIG="$WORK/operator.kubeconfig" kubectl auth can-i $verb_resource -n "$APPS_NS" || true)"
    assert_eq "$can" no "the operator's ServiceAccount may not $verb_resource"
  done
  start_operator
}

apply_first_examples() {
  kubectl -n "$APPS_NS" apply -f "$ROOT/examples/minimal.yaml" -f "$ROOT/examples/intel.yaml"
  kubectl -n "$APPS_NS" wait --for=condition=Ready zc/minimal zc/intel --timeout=180s
  # The intel feed reaches the manager as a volume of the ConfigMap.
  local mounted
  mounted="$(kubectl -n "$APPS_NS" get statefulset intel-manager -o json |
    jq -r '[.spec.template.spec.volumes[]? | .configMap.name // empty] | index("zeek-intel") != null')"
  assert_eq "$mounted" true "the intel ConfigMap is mounted on the manager"
}

get_shows_columns() {
  local nodes header row
  nodes="$(kubectl get nodes --no-headers | wc -l)"
  kubectl -n "$APPS_NS" get zc | tee "$WORK/get-zc.txt" >&2
  header="$(head -n 1 "$WORK/get-zc.txt" | tr -s ' ')"
  assert_eq "$header" "NAME READY MANAGER LOGGERS PROXIES WORKERS AGE" "kubectl get zc columns"
  row="$(kubectl -n "$APPS_NS" get zc minimal --no-headers | awk '{print $2, $3, $4, $5, $6}')"
  assert_eq "$row" "True 1 1 1 $nodes" "minimal: ready, one manager, logger and proxy, a worker per node"
  # Through a file, not `kubectl | head`: head closing the pipe early makes kubectl die of SIGPIPE, which pipefail
  # turns into a failure (it did once, depending on when kubectl wrote its second line).
  kubectl -n "$APPS_NS" get zc -o wide >"$WORK/get-zc-wide.txt"
  header="$(head -n 1 "$WORK/get-zc-wide.txt" | tr -s ' ')"
  assert_eq "$header" "NAME READY MANAGER LOGGERS PROXIES WORKERS EPOCH PAUSED DETECTIONS AGE" \
    "kubectl get zc -o wide columns"
  # The API server filled in the default detections, zeekctl's local.zeek.
  assert_eq "$(kubectl -n "$APPS_NS" get zc minimal -o jsonpath='{.spec.detections}')" '["local"]' \
    "minimal: the default detections"
  # Events and metrics, as the guide's troubleshooting section reads them.
  assert_contains "$(kubectl -n "$APPS_NS" events --for zeekcluster/minimal)" CertificatesIssued "events of zc/minimal"
  assert_contains "$(curl -fsS "http://127.0.0.1:$OPERATOR_PORT/metrics")" 'zeek_operator_reconciliations_total' \
    "the operator's metrics"
}

scale_proxies() {
  local name="$1" replicas="$2" before after
  before="$(kubectl -n "$APPS_NS" get statefulsets -l "app.kubernetes.io/instance=$name" \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.generation} {end}')"
  kubectl -n "$APPS_NS" scale "zc/$name" --replicas="$replicas"
  wait_until 120 "zc/$name to report $replicas ready proxies" proxies_ready_are "$name" "$replicas"
  assert_eq "$(kubectl -n "$APPS_NS" get zc "$name" --no-headers | awk '{print $5}')" "$replicas" "PROXIES column"
  assert_eq "$(kubectl -n "$APPS_NS" get statefulset "$name-proxy" -o jsonpath='{.status.readyReplicas}')" \
    "$replicas" "ready pods of StatefulSet $name-proxy"
  # Scaling touches the proxy StatefulSet only.
  after="$(kubectl -n "$APPS_NS" get statefulsets -l "app.kubernetes.io/instance=$name" \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.generation} {end}')"
  local entry
  for entry in $before; do
    [[ "$entry" == "$name-proxy="* ]] && continue
    assert_contains " $after" " $entry" "generation of the StatefulSets other than the proxies"
  done
}

bad_specs_are_refused() {
  local out
  out="$(kubectl -n "$APPS_NS" apply -f "$E2E_DIR/scenario/bad-spec.yaml" 2>&1)" && fail "a bad spec was accepted: $out"
  assert_contains "$out" "site.localNetworks entries must not have host bits set (write 10.0.0.0/8, not 10.0.0.1/8)" \
    "kubectl apply of a bad spec"
  out="$(kubectl -n "$APPS_NS" scale zc/minimal --replicas=65 2>&1)" && fail "65 proxies were accepted: $out"
  assert_contains "$out" "proxies.replicas must be between 0 and 64" "kubectl scale beyond the range"
  out="$(kubectl -n "$APPS_NS" patch zc/minimal --type=merge -p '{"spec":{"loggers":{"storage":{"size":"20Gi"}}}}' 2>&1)" &&
    fail "resizing the log volumes was accepted: $out"
  assert_contains "$out" "loggers.storage.size and loggers.storage.storageClassName are immutable" "kubectl patch of storage"
  say "  refused with: ${out##*: }"
}

delete_cluster() {
  local pvcs=("${@:2}") name="$1" left
  kubectl -n "$APPS_NS" delete zc "$name" --wait --timeout=60s
  wait_until 120 "the objects of $name to be collected" nothing_owned_left "$name"
  left="$(kubectl -n "$APPS_NS" get pvc -l "app.kubernetes.io/instance=$name" -o name 2>/dev/null | sort | tr '\n' ' ')"
  local expected
  expected="$(printf 'persistentvolumeclaim/%s\n' "${pvcs[@]}" | sort | tr '\n' ' ')"
  assert_eq "$left" "$expected" "log volumes retained after deleting $name"
}

delete_first_examples() {
  delete_cluster minimal logs-minimal-logger-0
  delete_cluster intel logs-intel-logger-0
  kubectl -n "$APPS_NS" delete configmap zeek-intel
}

apply_production() {
  # Only the two labelled nodes capture; the example's per-node override names capture-b, here kwok-node-1.
  kubectl label nodes --all zeek.io/capture- >/dev/null
  kubectl label nodes kwok-node-0 kwok-node-1 zeek.io/capture=true
  sed 's/\bcapture-b\b/kwok-node-1/' "$ROOT/examples/production.yaml" | kubectl -n "$APPS_NS" apply -f -
  kubectl -n "$APPS_NS" wait --for=condition=Ready zc/production --timeout=180s
  local row captures
  row="$(kubectl -n "$APPS_NS" get zc production --no-headers | awk '{print $2, $3, $4, $5, $6}')"
  assert_eq "$row" "True 1 2 2 2" "production: ready, 1 manager, 2 loggers, 2 proxies, 2 workers"
  captures="$(zc_field production '{range .status.captures[*]}{.nodeName}={.interface}:{.state} {end}')"
  assert_eq "$captures" "kwok-node-0=af_packet::ens5:Capturing kwok-node-1=af_packet::ens6:Capturing " \
    "per-node capture interfaces"
  assert_eq "$(kubectl -n "$APPS_NS" get pvc -l app.kubernetes.io/instance=production \
    -o jsonpath='{range .items[*]}{.status.phase} {end}')" "Bound Bound " "the loggers' volumes"
}

upgrade_rolls_the_operator() {
  local template_before template_after rs_before
  template_before="$(kubectl -n "$OPERATOR_NS" get deployment "$RELEASE" -o jsonpath='{.spec.template}' | sha256sum)"
  rs_before="$(kubectl -n "$OPERATOR_NS" get replicasets -l "app.kubernetes.io/instance=$RELEASE" \
    -o jsonpath='{.items[?(@.spec.replicas>0)].metadata.name}')"
  # The local process stands for the Deployment's pod: it stops when its pod would be replaced.
  stop_operator
  helm upgrade "$RELEASE" "$CHART" --namespace "$OPERATOR_NS" --reuse-values --set watchNamespace="$APPS_NS" \
    --wait --timeout 3m > "$WORK/helm-upgrade.txt"
  kubectl -n "$OPERATOR_NS" rollout status deployment "$RELEASE" --timeout=120s
  template_after="$(kubectl -n "$OPERATOR_NS" get deployment "$RELEASE" -o jsonpath='{.spec.template}' | sha256sum)"
  [[ "$template_before" != "$template_after" ]] || fail "helm upgrade did not change the pod template"
  assert_eq "$(deployment_env WATCH_NAMESPACE)" "$APPS_NS" "WATCH_NAMESPACE in the new pod template"
  local rs_after
  rs_after="$(kubectl -n "$OPERATOR_NS" get replicasets -l "app.kubernetes.io/instance=$RELEASE" \
    -o jsonpath='{.items[?(@.spec.replicas>0)].metadata.name}')"
  [[ -n "$rs_after" && "$rs_after" != "$rs_before" ]] || fail "no new ReplicaSet ($rs_before -> $rs_after)"
  say "  ReplicaSet $rs_before -> $rs_after"
  # The workload permissions moved from a ClusterRoleBinding to a RoleBinding in the watched namespace.
  assert_empty "$(kubectl get clusterrolebinding "$RELEASE" -o name --ignore-not-found)" "the cluster-wide binding"
  kubectl -n "$APPS_NS" get rolebinding "$RELEASE" -o name >/dev/null
  # The operator as the new pod runs it, and it still reconciles, now through the namespaced binding.
  start_operator
  scale_proxies production 3
}

delete_production() {
  delete_cluster production logs-production-logger-0 logs-production-logger-1
}

uninstall_chart() {
  stop_operator
  helm uninstall "$RELEASE" --namespace "$OPERATOR_NS" --wait --timeout 2m
  wait_until 60 "the release's objects to be gone" no_release_objects_left
  # Helm never deletes the CRDs of a chart's crds/ folder (that would delete every ZeekCluster): it stays.
  kubectl get crd zeekclusters.zeek.io -o name >/dev/null
}

clean_up_namespaces() {
  kubectl delete namespace "$APPS_NS" "$OPERATOR_NS" --wait=false
  kubectl label nodes --all zeek.io/capture- >/dev/null
}

main() {
  say "control plane $APISERVER_URL; operator namespace $OPERATOR_NS, clusters in $APPS_NS; logs in $WORK"
  step "build the operator (cargo build --release --locked -p zeek-node -p zeek-operator)" build_operator
  step "helm lint; the chart's CRD is crds/zeekcluster.yaml" lint_chart
  step "helm install into a fresh namespace" install_chart
  step "view and edit users get ZeekCluster rights (aggregated roles)" aggregated_roles_reach_users
  step "run the operator out of cluster with the chart's ServiceAccount token" run_operator_out_of_cluster
  step "kubectl apply the minimal and intel examples; wait for Ready" apply_first_examples
  step "kubectl get zc shows the columns; events; metrics" get_shows_columns
  step "kubectl scale zc/minimal --replicas=3; the status follows" scale_proxies minimal 3
  step "bad specs are refused with readable messages" bad_specs_are_refused
  step "kubectl delete the minimal and intel clusters: only log volumes remain" delete_first_examples
  step "kubectl apply the production example on two labelled nodes; wait for Ready" apply_production
  step "helm upgrade --set watchNamespace rolls the operator; it reconciles with a RoleBinding" upgrade_rolls_the_operator
  step "kubectl delete zc/production: only its two log volumes remain" delete_production
  step "helm uninstall leaves no operator objects behind" uninstall_chart
  step "delete the scenario's namespaces" clean_up_namespaces
  print_summary
  say "passed"
}

main
