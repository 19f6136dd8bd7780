{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "lbaas-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed by the chart name unless it already contains it. */}}
{{- define "lbaas-operator.fullname" -}}
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

{{- define "lbaas-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lbaas-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lbaas-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lbaas-operator.labels" -}}
helm.sh/chart: {{ include "lbaas-operator.chart" . }}
{{ include "lbaas-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: lbaas-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lbaas-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lbaas-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lbaas-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/*
LBAAS_* environment variables, one per key of .Values.config (camelCase key -> LBAAS_SNAKE_CASE),
which mirrors lbaas.config.OperatorSettings. Lists (namespaces) are joined with commas; numbers
are written as JSON numbers.
*/}}
{{- define "lbaas-operator.configEnv" -}}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
- name: LBAAS_{{ $key | snakecase | upper }}
  {{- if kindIs "slice" $value }}
  value: {{ join "," $value | quote }}
  {{- else if kindIs "string" $value }}
  value: {{ $value | quote }}
  {{- else }}
  {{- /* toJson, not toString: a float64 1000000 must read 1000000, not 1e+06 */}}
  value: {{ $value | toJson | quote }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}
