#!/usr/bin/env bash
# Runs the e2e suite against the kind cluster made by up.sh. The suite sees
# CONCORD_E2E_KUBECONFIG and uses that cluster instead of starting its own control
# plane; tests that need the local pod runner's fault hooks (killing a pod's
# process, stopping the runner) are skipped there.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
CONCORD_E2E_KUBECONFIG="$KUBECONFIG_FILE" CONCORD_E2E_IMAGE="$IMAGE" npx vitest run e2e/ "$@"
