{{- /*
The rules of each role, and the code that needs each one. The operator reads only through its
informers (list + watch: lbaas.kube.informer, started by lbaas.runtime.informers_for) and writes
only through lbaas.reporter (statuses and finalizers by server-side apply = PATCH, Events by
POST = create), plus LeaseStore (lbaas.agents.leases) and Kube.read_secret. Nothing GETs one of
our objects, nothing updates or deletes them (the Services controller excepted), kopf watches
nothing (scanning disabled). The chart README has the same table; tests/unit/test_chart_rbac.py
holds the expected rules.
*/ -}}

{{- /* "true" (non-empty) when config.gatewayApi is not false: auto may turn it on at start */ -}}
{{- define "lbaas-operator.gatewayApi" -}}
{{- if ne (toString .Values.config.gatewayApi) "false" }}true{{ end }}
{{- end }}

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
{{- if include "lbaas-operator.gatewayApi" . }}
# GatewayClasses (config.gatewayApi): the controller's informer (lbaas.gateway).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gatewayclasses"]
  verbs: ["list", "watch"]
# Accepted and supportedFeatures of the classes naming lbaas.dev/gateway-controller:
# lbaas.gateway.routes -> Reporter.status (PATCH /status).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gatewayclasses/status"]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{- /* ---- controller: the watched namespaces (ClusterRole when cluster-wide) ---- */ -}}
{{- define "lbaas-operator.rules.controller.watched" -}}
{{- $gateway := include "lbaas-operator.gatewayApi" . }}
{{- if or .Values.config.services $gateway }}
# VIPs, pools, members, health monitors: informers list and watch them; the Services controller
# and the Gateway API controller (lbaas.generated) create, patch (server-side apply) and delete
# the VIP trees they make, and placement.binder adds and removes the VIP finalizer (PATCH).
- apiGroups: ["lbaas.dev"]
  resources: ["vips", "pools", "members", "healthmonitors"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- if $gateway }}
# L7 policies: informers list and watch them; the Gateway API controller creates, patches and
# deletes those it makes for HTTPRoutes (the Services controller generates none).
- apiGroups: ["lbaas.dev"]
  resources: ["l7policies"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- else }}
# L7 policies: informers list and watch them (the Services controller generates none).
- apiGroups: ["lbaas.dev"]
  resources: ["l7policies"]
  verbs: ["list", "watch"]
{{- end }}
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
{{- else if $gateway }}
# Services the Gateway API's routes name as backends: watched (their ports).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch"]
{{- end }}
{{- if or .Values.config.services $gateway }}
# The endpoints of those Services become Members: watched.
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
{{- end }}
{{- if $gateway }}
# Gateways (config.gatewayApi): watched; lbaas.gateway.gateways keeps its finalizer on those of
# its classes (server-side apply, PATCH).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways"]
  verbs: ["list", "watch", "patch"]
# Routes the Gateways serve, and the ReferenceGrants that let them name Services of other
# namespaces: watched.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "tcproutes", "tlsroutes", "udproutes", "referencegrants"]
  verbs: ["list", "watch"]
# Statuses of Gateways (addresses, listeners) and of routes (parents): Reporter.status (PATCH).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways/status", "httproutes/status", "tcproutes/status", "tlsroutes/status",
              "udproutes/status"]
  verbs: ["patch"]
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
{{- if include "lbaas-operator.gatewayApi" . }}
# GatewayClass parameters (config.gatewayApi): ConfigMaps of the release namespace only, the
# controller's informer (lbaas.gateway.params).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch"]
{{- end }}
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
# TLS termination: the Secrets (certificateRefs, CA bundles) and ConfigMaps (CA bundles) its VIP
# trees name. lbaas.tls.store watches them per namespace where it serves such a tree (Secrets by
# fieldSelector type), keeps only the named ones and reads a name wanted after its list (get).
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
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
