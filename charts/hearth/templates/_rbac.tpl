{{/*
What each part calls, and nothing more (no wildcards). The operator: watches ModelDeployments
and writes their status; creates and patches the Deployment and Service of each; watches Pods
(its own models', and its fetch Jobs'); runs the fetch Jobs that download weights into the
cache (deleting one whose source changed); records Events. The router: watches ModelDeployments and patches their
annotations (wake, last activity, the dashboard's unload), and reads Nodes for the dashboard's
GPU map. Nodes are cluster-scoped, so reading them is always a ClusterRole rule.
*/}}
{{- define "hearth.operatorRules" -}}
- apiGroups: [hearth.dev]
  resources: [modeldeployments]
  verbs: [get, list, watch]
- apiGroups: [hearth.dev]
  resources: [modeldeployments/status]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "hearth.nodeReads" -}}
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, watch]
{{- end -}}

{{- define "hearth.routerRules" -}}
- apiGroups: [hearth.dev]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch]
{{- end -}}
