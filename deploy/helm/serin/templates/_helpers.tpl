{{- define "serin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "serin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "serin.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "serin.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "serin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "serin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "serin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "serin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "serin.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "serin.alertsSecret" -}}
{{- default (printf "%s-alerts" (include "serin.fullname" .)) .Values.alerts.existingSecret -}}
{{- end -}}

{{- define "serin.hasAlertsSecret" -}}
{{- if or .Values.alerts.existingSecret .Values.slack.url .Values.slack.token .Values.msteams.url -}}true{{- end -}}
{{- end -}}

{{/*
The routing kinds of each provider: what the operator creates and updates for it. Only the
providers in meshProvider and rbac.providers are granted.
*/}}
{{- define "serin.providerRules" -}}
{{- $providers := concat (list .Values.meshProvider) .Values.rbac.providers -}}
{{- $verbs := list "get" "list" "watch" "create" "update" "patch" "delete" -}}
{{- $seen := dict -}}
{{- range $providers }}
{{- $kind := . | toString | splitList ":" | first -}}
{{- if and (not (hasKey $seen $kind)) (ne $kind "kubernetes") }}
{{- $_ := set $seen $kind true }}
{{- if eq $kind "gatewayapi" }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: {{ toJson $verbs }}
{{- else if eq $kind "istio" }}
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices", "destinationrules"]
  verbs: {{ toJson $verbs }}
{{- else if or (eq $kind "linkerd") (eq $kind "osm") (eq $kind "smi") }}
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits"]
  verbs: {{ toJson $verbs }}
{{- else if eq $kind "nginx" }}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: {{ toJson $verbs }}
{{- else if or (eq $kind "gloo") (eq $kind "supergloo") }}
- apiGroups: ["gloo.solo.io"]
  resources: ["upstreams"]
  verbs: {{ toJson $verbs }}
- apiGroups: ["gateway.solo.io"]
  resources: ["routetables"]
  verbs: {{ toJson $verbs }}
{{- else if eq $kind "appmesh" }}
- apiGroups: ["appmesh.k8s.aws"]
  resources: ["virtualnodes", "virtualrouters", "virtualservices"]
  verbs: {{ toJson $verbs }}
{{- else }}
{{- fail (printf "rbac: serin has no router for provider %q; see meshProvider in values.yaml" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The rules of serin's Role or ClusterRole. */}}
{{- define "serin.rules" -}}
# The Canaries it runs (status written with server-side apply, the finalizer of revertOnDeletion).
- apiGroups: ["flagger.app"]
  resources: ["canaries"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["flagger.app"]
  resources: ["canaries/status", "canaries/finalizers"]
  verbs: ["get", "patch", "update"]
# Metric checks and alerts read their templates and providers.
- apiGroups: ["flagger.app"]
  resources: ["metrictemplates", "alertproviders"]
  verbs: ["get", "list", "watch"]
# The keptn metric provider: KeptnMetrics read, Analyses created, read and deleted.
- apiGroups: ["metrics.keptn.sh"]
  resources: ["keptnmetrics"]
  verbs: ["get"]
- apiGroups: ["metrics.keptn.sh"]
  resources: ["analyses"]
  verbs: ["get", "create", "delete"]
# Targets (watched by metadata) and the primaries copied from them.
- apiGroups: ["apps"]
  resources: ["deployments", "daemonsets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The apex, -primary and -canary Services.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Config tracking: the target's ConfigMaps and Secrets, and their -primary copies; Secrets
# also hold metric provider and AlertProvider credentials.
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The primary's autoscaler (HPA or KEDA ScaledObject), and pausing the target's.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Events about each Canary.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{ include "serin.providerRules" . | trim }}
{{- end -}}
