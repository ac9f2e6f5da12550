{{/* Names, labels and the image: one definition each. */}}

{{- define "hearth.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hearth.operatorName" -}}
{{- printf "%s-operator" (include "hearth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hearth.routerName" -}}
{{- printf "%s-router" (include "hearth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hearth.storeName" -}}
{{- printf "%s-store" (include "hearth.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The routers' shared store: "external" (a URL or a Secret), "valkey" (the chart's), or "". */}}
{{- define "hearth.store" -}}
{{- $store := .Values.router.store -}}
{{- if or $store.url $store.urlSecret -}}
external
{{- else if gt (int .Values.router.replicas) 1 -}}
{{- if not $store.valkey.enabled -}}
{{- fail "router.replicas > 1 needs a store the replicas share: set router.store.url, router.store.urlSecret or router.store.valkey.enabled" -}}
{{- end -}}
valkey
{{- end -}}
{{- end -}}

{{- define "hearth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: hearth
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hearth.selector" -}}
app.kubernetes.io/name: hearth
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hearth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "hearth.apiKeysSecret" -}}
{{- default (printf "%s-api-keys" (include "hearth.fullname" .)) .Values.apiKeys.existingSecret -}}
{{- end -}}

{{/* Where ModelDeployments live when the chart renders them: the watched namespace, if any. */}}
{{- define "hearth.modelNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{/* The pod and container security context both parts run with: non-root, read-only root. */}}
{{- define "hearth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hearth.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
