{{/*
Expand the name of the chart.
*/}}
{{- define "taskevents.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "taskevents.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "taskevents.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "taskevents.labels" -}}
helm.sh/chart: {{ include "taskevents.chart" . }}
{{ include "taskevents.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: taskevents
{{- end }}

{{/*
Selector labels
*/}}
{{- define "taskevents.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskevents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "taskevents.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskevents.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The apps, in the order their resources are rendered.
*/}}
{{- define "taskevents.components" -}}
{{- list "publisher" "worker" | toJson }}
{{- end }}

{{/*
Name of one app's resources: <fullname>-<component>. Called with (dict "root" $ "component" "publisher").
*/}}
{{- define "taskevents.componentFullname" -}}
{{- printf "%s-%s" (include "taskevents.fullname" .root | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{/*
Labels of one app's resources. Called with (dict "root" $ "component" "publisher").
*/}}
{{- define "taskevents.componentLabels" -}}
{{ include "taskevents.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of one app's pods. Called with (dict "root" $ "component" "publisher").
*/}}
{{- define "taskevents.componentSelectorLabels" -}}
{{ include "taskevents.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Image of one app: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "taskevents.image" -}}
{{- $app := index .root.Values .component }}
{{- printf "%s:%s" $app.image.repository (default .root.Chart.AppVersion $app.image.tag) }}
{{- end }}

{{/*
Secret names of the Dapr tokens (key "token"): the existing Secret, or the one the chart creates.
*/}}
{{- define "taskevents.appTokenSecretName" -}}
{{- default (printf "%s-app-token" (include "taskevents.fullname" .)) .Values.tokens.app.existingSecret }}
{{- end }}

{{- define "taskevents.apiTokenSecretName" -}}
{{- default (printf "%s-api-token" (include "taskevents.fullname" .)) .Values.tokens.api.existingSecret }}
{{- end }}

{{/*
terminationGracePeriodSeconds of one app: daprd's block + graceful shutdown, plus a margin,
so Kubernetes never kills the sidecar in the middle of its own shutdown.
*/}}
{{- define "taskevents.terminationGracePeriodSeconds" -}}
{{- $app := index .root.Values .component }}
{{- add $app.dapr.blockShutdownSeconds $app.dapr.gracefulShutdownSeconds $app.terminationGraceMarginSeconds }}
{{- end }}

{{/*
Labels of the helm test pod; the NetworkPolicies admit it by these.
*/}}
{{- define "taskevents.testSelectorLabels" -}}
{{ include "taskevents.selectorLabels" . }}
app.kubernetes.io/component: test
{{- end }}
