{{/* Labels every object carries; the pods carry the same without the chart's. */}}
{{- define "graymesh.labels" -}}
app.kubernetes.io/name: graymesh
app.kubernetes.io/part-of: graymesh
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "graymesh.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end }}

{{- define "graymesh.configMapName" -}}
{{ default "graymesh-config" .Values.existingConfigMap }}
{{- end }}

{{/*
The config: the value as given, else the chart's file with the release's
namespace and ports put in (a config of one's own must name them itself).
*/}}
{{- define "graymesh.config" -}}
{{- if .Values.config -}}
{{ .Values.config }}
{{- else -}}
{{ .Files.Get "files/graymesh.yaml"
  | replace "0.0.0.0:18081" (printf "0.0.0.0:%v" .Values.ports.extproc)
  | replace "0.0.0.0:18000" (printf "0.0.0.0:%v" .Values.ports.xds)
  | replace "0.0.0.0:18080" (printf "0.0.0.0:%v" .Values.ports.admin)
  | replace "graymesh.graymesh.svc.cluster.local:18081" (printf "graymesh.%s.svc.cluster.local:%v" .Release.Namespace .Values.ports.extproc) }}
{{- end -}}
{{- end }}

{{/* The config and its keys in one directory, so the config's relative key paths resolve. */}}
{{- define "graymesh.configVolume" -}}
- name: config
  projected:
    defaultMode: 0440
    sources:
      - configMap:
          name: {{ include "graymesh.configMapName" .root }}
          items:
            - key: graymesh.yaml
              path: graymesh.yaml
      {{- $items := list }}
      {{- range .root.Values.keys.items }}
      {{- if or $.withAdminToken (ne . $.root.Values.keys.adminTokenKey) }}
      {{- $items = append $items . }}
      {{- end }}
      {{- end }}
      {{- if $items }}
      - secret:
          name: {{ .root.Values.keys.existingSecret }}
          items:
            {{- range $items }}
            - key: {{ . }}
              path: keys/{{ . }}
            {{- end }}
      {{- end }}
{{- end }}
