# Shared settings for the kind scripts. Override any of them from the environment.
set -euo pipefail
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CLUSTER_NAME="${CLUSTER_NAME:-concord-e2e}"
IMAGE="${IMAGE:-concord:e2e}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBECONFIG_FILE="${KUBECONFIG_FILE:-$REPO_ROOT/.data/kind/kubeconfig}"

# kind comes from the Go module proxy at a pinned version when it is not on the PATH.
kind_bin() {
  if command -v kind >/dev/null 2>&1; then
    command -v kind
  else
    local gobin
    gobin="$(go env GOPATH)/bin"
    [ -x "$gobin/kind" ] || GOFLAGS=-mod=mod go install "sigs.k8s.io/kind@$KIND_VERSION" >&2
    echo "$gobin/kind"
  fi
}
