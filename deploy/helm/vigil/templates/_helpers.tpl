{{/* The chart's name, at most 63 characters. */}}
{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, at most 63 characters (a Kubernetes name). */}}
{{- define "vigil.fullname" -}}
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

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The capabilities the agent gets, exactly those docs/deploy.md#capabilities lists (tests/deploy.rs
checks it): the base set, plus NET_ADMIN with egress control.
*/}}
{{- define "vigil.capabilities" -}}
- BPF
- PERFMON
- SYS_RESOURCE
- SYS_PTRACE
- DAC_READ_SEARCH
{{- if .Values.egress.enabled }}
- NET_ADMIN
{{- end }}
{{- end }}

{{/* A file's content from values: a string as written, anything else as YAML. */}}
{{- define "vigil.fileContent" -}}
{{- if kindIs "string" . }}
{{- . }}
{{- else }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The configuration file (docs/delivery.md). */}}
{{- define "vigil.config" -}}
sinks:
{{- toYaml .Values.sinks | nindent 2 }}
spool_dir: /var/lib/vigil/spool
fsync: {{ .Values.delivery.fsync | quote }}
heartbeat_interval: {{ .Values.delivery.heartbeatInterval | quote }}
drain_timeout: {{ .Values.delivery.drainTimeout | quote }}
{{- if .Values.egress.enabled }}
egress:
  - /etc/vigil/egress
{{- end }}
{{- end }}

{{/* Fails rendering on values the agent would refuse at start. */}}
{{- define "vigil.validate" -}}
{{- if not (or .Values.rules.bundled .Values.rules.custom .Values.rules.existingConfigMaps) }}
{{- fail "rules: bundled is off and there are no custom rules or existingConfigMaps: the agent would have no rules" }}
{{- end }}
{{- if not .Values.sinks }}
{{- fail "sinks is empty: name at least one sink (docs/delivery.md)" }}
{{- end }}
{{- if and .Values.egress.enabled (not (or .Values.egress.policies .Values.egress.existingConfigMap)) }}
{{- fail "egress.enabled needs egress.policies or egress.existingConfigMap" }}
{{- end }}
{{- range $name, $secret := .Values.secrets }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$" $name) }}
{{- fail (printf "secrets.%s: a secret's name must be a DNS label of at most 42 characters (it names a volume and a directory)" $name) }}
{{- end }}
{{- if and $secret.existingSecret $secret.stringData }}
{{- fail (printf "secrets.%s: give existingSecret or stringData, not both" $name) }}
{{- end }}
{{- if not (or $secret.existingSecret $secret.stringData) }}
{{- fail (printf "secrets.%s: give existingSecret or stringData" $name) }}
{{- end }}
{{- end }}
{{- end }}
