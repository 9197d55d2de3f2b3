{{/* The chart's name, shortened to what a label value may hold. */}}
{{- define "concord-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already contains the chart's. */}}
{{- define "concord-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "concord-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Stable labels that select the operator's pods (never change them in an upgrade). */}}
{{- define "concord-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "concord-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "concord-operator.labels" -}}
helm.sh/chart: {{ include "concord-operator.chart" . }}
{{ include "concord-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: concord
{{- end }}

{{- define "concord-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "concord-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "concord-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The image ConsensusClusters run by default: nodeImage, else the operator's own (one image holds both). */}}
{{- define "concord-operator.nodeImage" -}}
{{- default (include "concord-operator.image" .) .Values.nodeImage }}
{{- end }}

{{/*
The operator's rules in every namespace it watches: exactly operator/rbac.ts's
operatorRules, in the same order. e2e/chart.test.ts renders them and compares,
so a rule added there without one here fails the tests.
*/}}
{{- define "concord-operator.rules" -}}
# Its own resource: read, and write status only (users own the spec).
- apiGroups: [concord.dev]
  resources: [consensusclusters]
  verbs: [get, list, watch]
- apiGroups: [concord.dev]
  resources: [consensusclusters/status]
  verbs: [get, patch, update]
# Children, applied server-side; StatefulSets are deleted (orphaning pods) to grow their volume claim template.
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# Member pods: watched, and deleted one at a time during a rolling upgrade.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
# Volume expansion.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, patch]
# Events on ConsensusClusters (a repeat patches the series count).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* operator/rbac.ts's leaderElectionRules: the Lease in the release namespace. */}}
{{- define "concord-operator.leaderElectionRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}
