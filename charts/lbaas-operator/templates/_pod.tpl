{{/*
The pod template of every workload: one container running `lbaas-operator <role>`.
(dict "root" $ "workload" run|controller|agent|nodeAgent "role" run|controller|agent
      "saRole" controller|agent "values" <the workload's values> "agent" BOOL
      "labels" MAP "nodeLabel" KEY "hostNetwork" BOOL)
*/}}
{{- define "lbaas-operator.podTemplate" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $config := $root.Values.config }}
metadata:
  labels:
    {{- include "lbaas-operator.workloadSelectorLabels" . | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "lbaas-operator.serviceAccountName" (dict "root" $root "role" .saRole) }}
  automountServiceAccountToken: true
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if .hostNetwork }}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: operator
      image: {{ include "lbaas-operator.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: [{{ .role | quote }}]
      env:
        {{- include "lbaas-operator.env" . | trim | nindent 8 }}
      {{- if or $config.metricsPort $config.healthPort }}
      ports:
        {{- if $config.metricsPort }}
        - name: metrics
          containerPort: {{ $config.metricsPort }}
          protocol: TCP
        {{- end }}
        {{- if $config.healthPort }}
        - name: health
          containerPort: {{ $config.healthPort }}
          protocol: TCP
        {{- end }}
      {{- end }}
      {{- if $config.healthPort }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: health
        {{- toYaml $root.Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /healthz
          port: health
        {{- toYaml $root.Values.readinessProbe | nindent 8 }}
      {{- end }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        # The root filesystem is read-only; /tmp is the only writable place.
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* A PodDisruptionBudget for a Deployment. (dict "root" $ "workload" W "pdb" VALUES) */}}
{{- define "lbaas-operator.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "lbaas-operator.workloadName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "lbaas-operator.workloadLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "lbaas-operator.workloadSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/*
A Deployment. Rolling updates start the new pod before stopping an old one: two controllers or
agents at once are safe (a leader Lease, device Leases), and a stopping pod releases its Leases
at once, so the standby or the other agents take over within a renew period.
(dict "root" $ "workload" W "role" R "saRole" S "values" V "replicas" N "agent" BOOL "labels" MAP)
*/}}
{{- define "lbaas-operator.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lbaas-operator.workloadName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "lbaas-operator.workloadLabels" . | nindent 4 }}
spec:
  replicas: {{ .replicas }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "lbaas-operator.workloadSelectorLabels" . | nindent 6 }}
  template:
    {{- include "lbaas-operator.podTemplate" . | trim | nindent 4 }}
{{- end }}
