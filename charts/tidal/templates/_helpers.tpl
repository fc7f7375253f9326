{{/* Names and labels shared by every template. */}}

{{- define "tidal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed with the chart name unless it already contains it. */}}
{{- define "tidal.fullname" -}}
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

{{- define "tidal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tidal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tidal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tidal.labels" -}}
helm.sh/chart: {{ include "tidal.chart" . }}
{{ include "tidal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: tidal
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tidal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tidal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tidal.peeringName" -}}
{{- default (include "tidal.fullname" .) .Values.peering.name }}
{{- end }}

{{/* The image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "tidal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* true when the operator watches every namespace (no watchNamespaces given). */}}
{{- define "tidal.clusterWide" -}}
{{- if .Values.watchNamespaces }}false{{ else }}true{{ end }}
{{- end }}

{{/*
The `tidal run` arguments: the contract between this chart and the operator's entry point
(documented in docs/configuration.md).
*/}}
{{- define "tidal.args" -}}
- run
- --interval={{ .Values.operator.intervalSeconds }}
{{- range .Values.watchNamespaces }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- with .Values.operator.prometheusUrl }}
- {{ printf "--prometheus-url=%s" . | quote }}
{{- end }}
- --log-format={{ .Values.operator.logFormat }}
- --log-level={{ .Values.operator.logLevel }}
{{- if .Values.peering.enabled }}
- --peering={{ include "tidal.peeringName" . }}
{{- else }}
- --standalone
{{- end }}
{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- end }}
- --health-port={{ .Values.ports.health }}
- --metrics-port={{ .Values.ports.metrics }}
- {{ printf "--health-bind-address=%s" .Values.bindAddress.health | quote }}
- {{ printf "--metrics-bind-address=%s" .Values.bindAddress.metrics | quote }}
{{- if .Values.activator.enabled }}
- {{ printf "--activator-service=%s/%s" .Release.Namespace (include "tidal.activatorName" .) | quote }}
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The activator's name (Deployment, Service, ServiceAccount, PDB, roles). */}}
{{- define "tidal.activatorName" -}}
{{- printf "%s-activator" (include "tidal.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The activator pods' selector: a name of its own, so neither the operator's Deployment nor its
metrics Service or PodDisruptionBudget ever selects them. */}}
{{- define "tidal.activatorSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-activator" (include "tidal.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tidal.activatorLabels" -}}
helm.sh/chart: {{ include "tidal.chart" . }}
{{ include "tidal.activatorSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: activator
app.kubernetes.io/part-of: tidal
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The `tidal activator` arguments (docs/activator.md). */}}
{{- define "tidal.activatorArgs" -}}
- activator
- --port={{ .Values.activator.port }}
- --queue-limit={{ .Values.activator.queueLimit }}
- --hold-timeout={{ .Values.activator.holdTimeoutSeconds }}
- --retry-after={{ .Values.activator.retryAfterSeconds }}
- --log-level={{ .Values.activator.logLevel }}
{{- end }}
