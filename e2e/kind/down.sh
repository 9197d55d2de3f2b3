#!/usr/bin/env bash
# Deletes the kind cluster made by up.sh.
source "$(dirname "$0")/lib.sh"
"$(kind_bin)" delete cluster --name "$CLUSTER_NAME"
rm -f "$KUBECONFIG_FILE"
