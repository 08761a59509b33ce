{{/* The chart's name. */}}
{{- define "chargemesh.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name. */}}
{{- define "chargemesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: name and instance only, so they never change across upgrades; each
component is its own name. */}}
{{- define "chargemesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chargemesh.name" .root }}-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Standard labels. */}}
{{- define "chargemesh.labels" -}}
{{ include "chargemesh.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: chargemesh
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image reference. */}}
{{- define "chargemesh.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* A component's in-cluster mesh URL. */}}
{{- define "chargemesh.url" -}}
https://{{ include "chargemesh.fullname" .root }}-{{ .component }}:{{ (index .root.Values .component).port }}
{{- end -}}
