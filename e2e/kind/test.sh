#!/usr/bin/env bash
# Runs the operator's e2e suite against the kind cluster made by up.sh. The
# suite sees CONCORD_E2E_KUBECONFIG and uses that cluster (and the chart's
# operator) instead of starting its own control plane; it reaches pods through
# the apiserver's pod proxy, as it does locally. The tests that crash processes
# or run operator replicas themselves need the local harness and are skipped.
# (The harness's own tests, e2e/harness.test.ts and e2e/runner/, are about the
# local control plane and do not apply to kind.)
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
CONCORD_E2E_KUBECONFIG="$KUBECONFIG_FILE" CONCORD_E2E_IMAGE="$IMAGE" npx vitest run e2e/operator.test.ts "$@"
