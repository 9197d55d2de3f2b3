#!/usr/bin/env bash
# Creates a kind cluster, builds Concord's image, loads it into the nodes and
# installs the operator chart. Needs Docker, kubectl and helm.
source "$(dirname "$0")/lib.sh"
KIND="$(kind_bin)"
mkdir -p "$(dirname "$KUBECONFIG_FILE")"

if ! "$KIND" get clusters | grep -qx "$CLUSTER_NAME"; then
  "$KIND" create cluster --name "$CLUSTER_NAME" --config "$REPO_ROOT/e2e/kind/cluster.yaml" --kubeconfig "$KUBECONFIG_FILE" --wait 120s
fi
docker build -t "$IMAGE" "$REPO_ROOT"
"$KIND" load docker-image "$IMAGE" --name "$CLUSTER_NAME"

repo="${IMAGE%:*}"
tag="${IMAGE##*:}"
KUBECONFIG="$KUBECONFIG_FILE" helm upgrade --install concord-operator "$REPO_ROOT/charts/concord-operator" \
  --namespace concord-system --create-namespace --wait --timeout 5m \
  --set image.repository="$repo" --set image.tag="$tag" --set image.pullPolicy=Never \
  --set nodeImage="$IMAGE"
echo "kind cluster $CLUSTER_NAME is ready: export KUBECONFIG=$KUBECONFIG_FILE"
