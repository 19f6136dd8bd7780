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

{{/* Every pod of the release (the metrics Service selects these). */}}
{{- define "lbaas-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lbaas-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lbaas-operator.labels" -}}
helm.sh/chart: {{ include "lbaas-operator.chart" . }}
{{ include "lbaas-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lbaas-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Workloads: name suffix and component label of each. The component is part of the selector, so
no two workloads of a release select each other's pods. (dict "root" $ "workload" "controller")
*/}}
{{- define "lbaas-operator.component" -}}
{{- get (dict "run" "operator" "controller" "controller" "agent" "agent" "nodeAgent" "node-agent") .workload }}
{{- end }}

{{- define "lbaas-operator.workloadName" -}}
{{- $fullname := include "lbaas-operator.fullname" .root }}
{{- if eq .workload "run" }}
{{- $fullname }}
{{- else }}
{{- printf "%s-%s" $fullname (include "lbaas-operator.component" .) }}
{{- end }}
{{- end }}

{{- define "lbaas-operator.workloadSelectorLabels" -}}
{{ include "lbaas-operator.selectorLabels" .root }}
app.kubernetes.io/component: {{ include "lbaas-operator.component" . }}
{{- end }}

{{- define "lbaas-operator.workloadLabels" -}}
{{ include "lbaas-operator.labels" .root }}
app.kubernetes.io/component: {{ include "lbaas-operator.component" . }}
{{- end }}

{{/*
ServiceAccounts: <name>-controller and <name>-agent in mode split, <name> in mode run (the one
process needs both roles). (dict "root" $ "role" "controller"|"agent")
*/}}
{{- define "lbaas-operator.serviceAccountName" -}}
{{- $base := .root.Values.serviceAccount.name | default (include "lbaas-operator.fullname" .root) }}
{{- if eq .root.Values.mode "run" }}
{{- $base }}
{{- else }}
{{- printf "%s-%s" $base .role }}
{{- end }}
{{- end }}

{{- define "lbaas-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/*
The environment of an operator container. (dict "root" $ "agent" BOOL "labels" MAP "nodeLabel" KEY)
- LBAAS_AGENT_ID and LBAAS_LEASE_NAMESPACE: the pod's name and namespace (downward API).
- LBAAS_<KEY>: one per key of .Values.config (camelCase -> UPPER_SNAKE), which mirrors
  lbaas.config.OperatorSettings. Lists are joined with commas, numbers written as JSON numbers.
  Empty values are left out (the API server drops `value: ""`, and a bundle that renders one
  never converges under `kubectl apply`); the operator's default for them is the same.
- LBAAS_AGENT_LABELS (agents only): config.agentLabels plus the workload's labels (and
  nodeLabel=$(NODE_NAME)), as k=v,... in key order.
*/}}
{{- define "lbaas-operator.env" -}}
{{- $root := .root }}
- name: LBAAS_AGENT_ID
  valueFrom:
    fieldRef:
      apiVersion: v1
      fieldPath: metadata.name
- name: LBAAS_LEASE_NAMESPACE
  valueFrom:
    fieldRef:
      apiVersion: v1
      fieldPath: metadata.namespace
{{- range $key, $value := $root.Values.config }}
{{- $empty := kindIs "invalid" $value }}
{{- if or (kindIs "string" $value) (kindIs "slice" $value) (kindIs "map" $value) }}
{{- $empty = eq (len $value) 0 }}
{{- end }}
{{- if not (or $empty (eq $key "agentLabels")) }}
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
{{- if .agent }}
{{- $labels := merge (deepCopy (.labels | default dict)) ($root.Values.config.agentLabels | default dict) }}
{{- if .nodeLabel }}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      apiVersion: v1
      fieldPath: spec.nodeName
{{- $_ := set $labels .nodeLabel "$(NODE_NAME)" }}
{{- end }}
{{- if $labels }}
{{- $pairs := list }}
{{- range $key := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $labels $key)) }}
{{- end }}
- name: LBAAS_AGENT_LABELS
  value: {{ join "," $pairs | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Values the operator would refuse at start, and combinations that cannot work: refused at render
time instead of a crash loop.
*/}}
{{- define "lbaas-operator.validate" -}}
{{- $c := .Values.config }}
{{- if and (eq .Values.mode "split") (not (or .Values.agents.deployment.enabled .Values.agents.daemonset.enabled)) }}
{{- fail "mode split needs agents: set agents.deployment.enabled or agents.daemonset.enabled (or mode run)" }}
{{- end }}
{{- if gt (addf (float64 $c.driverTimeout) (float64 $c.leaseRenewPeriod) 1) (float64 $c.leaseDuration) }}
{{- fail (printf "config.driverTimeout (%v) + config.leaseRenewPeriod (%v) + 1 must not exceed config.leaseDuration (%v): a driver call must end before the lease of its device could expire" $c.driverTimeout $c.leaseRenewPeriod $c.leaseDuration) }}
{{- end }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf (float64 $c.driverTimeout) 15) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least config.driverTimeout + 15 (%v): a graceful stop lets driver calls end, then hands the Devices over" .Values.terminationGracePeriodSeconds (addf (float64 $c.driverTimeout) 15)) }}
{{- end }}
{{- end }}
