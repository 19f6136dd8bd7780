{{- /*
The rules of each role, and the code that needs each one. The operator reads only through its
informers (list + watch: lbaas.kube.informer, started by lbaas.runtime.informers_for) and writes
only through lbaas.reporter (statuses and finalizers by server-side apply = PATCH, Events by
POST = create), plus LeaseStore (lbaas.agents.leases) and Kube.read_secret. Nothing GETs one of
our objects, nothing updates or deletes them (the Services controller excepted), kopf watches
nothing (scanning disabled). The chart README has the same table; tests/unit/test_chart_rbac.py
holds the expected rules.
*/ -}}

{{- /* ---- controller: cluster-scoped, ClusterRole in every mode ---- */ -}}
{{- define "lbaas-operator.rules.controller.cluster" -}}
# Devices: the controller's informer lists and watches them; placement.inventory adds and
# removes the finalizer (Reporter.finalizer: server-side apply, PATCH).
- apiGroups: ["lbaas.dev"]
  resources: ["devices"]
  verbs: ["list", "watch", "patch"]
# Device counts (bound VIPs, free capacity): placement.inventory -> Reporter.status (PATCH /status).
- apiGroups: ["lbaas.dev"]
  resources: ["devices/status"]
  verbs: ["patch"]
# Namespace labels for Devices' namespaceSelector: the controller's Namespaces informer.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}

{{- /* ---- controller: the watched namespaces (ClusterRole when cluster-wide) ---- */ -}}
{{- define "lbaas-operator.rules.controller.watched" -}}
{{- if .Values.config.services }}
# VIPs, pools, members, health monitors: informers list and watch them; the Services controller
# creates, patches (server-side apply) and deletes the VIP trees it makes for Services, and
# placement.binder adds and removes the VIP finalizer (PATCH).
- apiGroups: ["lbaas.dev"]
  resources: ["vips", "pools", "members", "healthmonitors"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# L7 policies: informers list and watch them (the Services controller generates none).
- apiGroups: ["lbaas.dev"]
  resources: ["l7policies"]
  verbs: ["list", "watch"]
{{- else }}
# VIPs, pools, members, health monitors, L7 policies: informers list and watch them.
- apiGroups: ["lbaas.dev"]
  resources: ["vips", "pools", "members", "healthmonitors", "l7policies"]
  verbs: ["list", "watch"]
# The VIP finalizer: placement.binder (Reporter.finalizer: server-side apply, PATCH).
- apiGroups: ["lbaas.dev"]
  resources: ["vips"]
  verbs: ["patch"]
{{- end }}
# Statuses: the VIP's binding (placement.binder), Error ParentNotFound of orphaned pools,
# members, monitors and L7 policies (trees.orphans); Reporter.status, PATCH /status.
- apiGroups: ["lbaas.dev"]
  resources: ["vips/status", "pools/status", "members/status", "healthmonitors/status", "l7policies/status"]
  verbs: ["patch"]
{{- if .Values.config.services }}
# Services of type LoadBalancer: watched; the Services controller keeps its finalizer on them
# (server-side apply, PATCH).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "patch"]
# status.loadBalancer.ingress: Reporter.service_load_balancer (merge patch on /status).
- apiGroups: [""]
  resources: ["services/status"]
  verbs: ["patch"]
# The endpoints of those Services become Members: watched.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{- /* ---- controller: the release namespace ---- */ -}}
{{- define "lbaas-operator.rules.controller.leases" -}}
# Leader election (agents.election via LeaseStore): creates the Lease lbaas-controller once...
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
# ... then reads and renews (replaces) only that one.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: ["lbaas-controller"]
  verbs: ["get", "update"]
# The device Leases as the agents write them: placement.ownerless reports Devices no agent
# drives (the controller's Leases informer, list + watch; one Lease per Device: no names).
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list", "watch"]
{{- end }}

{{- /* ---- agent: cluster-scoped ---- */ -}}
{{- define "lbaas-operator.rules.agent.cluster" -}}
# Devices: the agent's informer lists and watches them (which ones it may own, their drivers).
- apiGroups: ["lbaas.dev"]
  resources: ["devices"]
  verbs: ["list", "watch"]
# Device status (phase, probe, owner agent): agents.worker -> Reporter.status (PATCH /status).
- apiGroups: ["lbaas.dev"]
  resources: ["devices/status"]
  verbs: ["patch"]
{{- end }}

{{- /* ---- agent: the watched namespaces ---- */ -}}
{{- define "lbaas-operator.rules.agent.watched" -}}
# VIPs, pools, members, health monitors, L7 policies: the agent's informers list and watch them.
- apiGroups: ["lbaas.dev"]
  resources: ["vips", "pools", "members", "healthmonitors", "l7policies"]
  verbs: ["list", "watch"]
# The VIP finalizer (the device's config goes first): trees.reconcile (server-side apply, PATCH).
- apiGroups: ["lbaas.dev"]
  resources: ["vips"]
  verbs: ["patch"]
# What the device did with each object: trees.reconcile -> Reporter.status (PATCH /status).
- apiGroups: ["lbaas.dev"]
  resources: ["vips/status", "pools/status", "members/status", "healthmonitors/status", "l7policies/status"]
  verbs: ["patch"]
{{- end }}

{{- /* ---- agent: the release namespace ---- */ -}}
{{- define "lbaas-operator.rules.agent.leases" -}}
# Device ownership (agents.ownership, agents.presence via LeaseStore): the presence Lease
# lbaas-agent-<id> and the Leases lbaas-device-*: read, listed, created, renewed and released
# (replace). Names are per agent and per Device: no resourceNames.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "create", "update"]
{{- end }}

{{- define "lbaas-operator.rules.agent.secrets" -}}
# Device credentials: agents.worker reads the Secret of a Device's credentialsSecretRef
# (Kube.read_secret: get by name only, never list or watch).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}

{{- /* ---- both: Events ---- */ -}}
{{- define "lbaas-operator.rules.events" -}}
# Events: Reporter posts them (create only) in the namespace of the object, or in the release
# namespace for cluster-scoped Devices (event_namespace = leaseNamespace).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
