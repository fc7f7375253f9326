{{/*
tidal.rbacRules: every permission the operator needs, in ONE list, so that the rendered roles and
the RBAC test (operator API calls vs. rendered rules) read from the same place.

Each entry:
  scope      cluster    - cluster-scoped resources, or namespaced ones read cluster-wide
                          (always in the ClusterRole)
             namespaced - resources in watched namespaces (ClusterRole when cluster-wide,
                          one Role per watched namespace otherwise)
             events     - like namespaced, plus the release namespace: kopf posts events about
                          cluster-scoped objects into the operator's own namespace
             lease      - the release namespace only (a Role of its own): the leader-election Lease
             release    - the release namespace only (a Role of its own): the activator's endpoints
  why        what the operator does with it; `admission:` marks a grant no API call uses but an
             admission plugin checks (the RBAC test must exclude those from "unused" checks)
  apiGroups, resources, verbs: as in a PolicyRule (exact names, never "*")

Rules depend on the mode: peering rules only when peering is on, ClusterKopfPeering cluster-wide,
KopfPeering in watched namespaces. Every verb here is one the operator was seen to use
(tests/operator/test_operator_rbac_chart.py), except the `admission:` entries.
*/}}
{{- define "tidal.rbacRules" -}}
{{- $clusterWide := eq (include "tidal.clusterWide" .) "true" -}}
- scope: namespaced
  why: kopf watches the workloads and patches their finalizers and its handler-progress annotations
  apiGroups: ["tidal.dev"]
  resources: ["modeldeployments", "serverlessfunctions"]
  verbs: ["list", "watch", "patch"]
- scope: namespaced
  why: the operator writes status (forecast, replicas, conditions, last decision)
  apiGroups: ["tidal.dev"]
  resources: ["modeldeployments/status", "serverlessfunctions/status"]
  verbs: ["patch"]
- scope: namespaced
  why: "admission: OwnerReferencesPermissionEnforcement requires update on an owner's finalizers to set blockOwnerDeletion on children"
  apiGroups: ["tidal.dev"]
  resources: ["modeldeployments/finalizers", "serverlessfunctions/finalizers"]
  verbs: ["update"]
- scope: cluster
  why: the accelerator catalogue is watched (placement) and read by name (reconcile)
  apiGroups: ["tidal.dev"]
  resources: ["acceleratorclasses"]
  verbs: ["get", "list", "watch"]
- scope: cluster
  why: fair-share policies are listed every tick and watched for the grants that cap ModelDeployments
  apiGroups: ["tidal.dev"]
  resources: ["fairsharepolicies"]
  verbs: ["list", "watch"]
- scope: cluster
  why: the operator writes AcceleratorClass and FairSharePolicy status (grants, deficits, fairness)
  apiGroups: ["tidal.dev"]
  resources: ["acceleratorclasses/status", "fairsharepolicies/status"]
  verbs: ["patch"]
- scope: namespaced
  why: one Deployment per pool and accelerator, server-side applied; removed when a pool or accelerator goes away
  apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- scope: namespaced
  why: Services per pool, server-side applied (an apply that creates is authorized as create); listed and deleted when a pool goes away
  apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "create", "patch", "delete"]
- scope: namespaced
  why: KV-cache policy and predictor-state ConfigMaps, server-side applied; the state is read back on restart
  apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
- scope: namespaced
  why: "pod start phases feed the cold-start predictor; pods on GPU nodes count as used devices. admission: get only so the operator may grant it to a P/D router's Role (RBAC lets a subject grant only what it holds)"
  apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- scope: namespaced
  why: a disaggregated ModelDeployment's router identity (ServiceAccount, a Role reading the namespace's pods, its RoleBinding), server-side applied
  apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create", "patch"]
- scope: namespaced
  why: a disaggregated ModelDeployment's router identity (ServiceAccount, a Role reading the namespace's pods, its RoleBinding), server-side applied
  apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create", "patch"]
{{- range .Values.rbac.scaleTargets }}
- scope: namespaced
  why: target mode, a pool's scaleTargetRef is read and scaled through its /scale subresource
  apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ $scaled := list }}{{ range .resources }}{{ $scaled = append $scaled (printf "%s/scale" .) }}{{ end }}{{ toJson $scaled }}
  verbs: ["get", "patch"]
{{- end }}
- scope: cluster
  why: devices per node for AcceleratorClass inventory and fair-share capacity
  apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list"]
- scope: events
  why: kopf and tidal post events about decisions and errors
  apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- scope: cluster
  why: kopf scans CustomResourceDefinitions to resolve the resources it serves
  apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.activator.enabled }}
- scope: namespaced
  why: while a ServerlessFunction has no ready instance, or a ModelDeployment that can be at zero has no ready replica path, an EndpointSlice adds the activator to its (entry) Service (server-side applied; deleted once it is ready)
  apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["create", "patch", "delete"]
- scope: release
  why: the activator's own addresses, from its Service's EndpointSlices in the release namespace
  apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list"]
{{- end }}
{{- if .Values.leaderElection.enabled }}
- scope: lease
  why: leader election, one replica holds the Lease tidal-operator and reconciles, the others wait (tidal/operator/leader.py)
  apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}
{{- if .Values.peering.enabled }}
{{- if $clusterWide }}
- scope: cluster
  why: kopf peering (ClusterKopfPeering) so that two operator instances never act at once
  apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- else }}
- scope: namespaced
  why: kopf peering (KopfPeering per watched namespace) so that two operator instances never act at once
  apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}
{{- end }}

{{/* PolicyRules of the given scopes, without the bookkeeping keys. Call with (list $ (list "scope"...)). */}}
{{- define "tidal.policyRules" -}}
{{- $root := index . 0 -}}
{{- $scopes := index . 1 -}}
{{- range (include "tidal.rbacRules" $root | fromYamlArray) }}
{{- if has .scope $scopes }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: {{ toJson .verbs }}
{{- end }}
{{- end }}
{{- end }}
