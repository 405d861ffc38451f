{{- define "orleans-mqtt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orleans-mqtt.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "orleans-mqtt.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "orleans-mqtt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (silo, gateway, etcd): call with (list $ "silo"). */}}
{{- define "orleans-mqtt.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "orleans-mqtt.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "orleans-mqtt.clusterId" -}}
{{- default (include "orleans-mqtt.fullname" .) .Values.clusterId -}}
{{- end -}}

{{- define "orleans-mqtt.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* etcd client URLs, comma-separated: the bundled members by their stable names, or the external endpoints. */}}
{{- define "orleans-mqtt.etcdEndpoints" -}}
{{- if .Values.etcd.enabled -}}
{{- $fullname := include "orleans-mqtt.fullname" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "http://%s-etcd-%d.%s-etcd.%s.svc.%s:%d" $fullname $i $fullname $.Release.Namespace $.Values.clusterDomain (int $.Values.etcd.ports.client)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- required "etcd.external.endpoints is required when etcd.enabled is false" (join "," .Values.etcd.external.endpoints) -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the gateways' certificate: cert-manager's, or an existing one. */}}
{{- define "orleans-mqtt.tlsSecret" -}}
{{- if .Values.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "orleans-mqtt.fullname" .) -}}
{{- else -}}
{{- required "tls.existingSecret (or tls.certManager.enabled) is required when tls.enabled" .Values.tls.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* Configuration keys as environment variables: a map of `Section:Key: value` to `Section__Key`. */}}
{{- define "orleans-mqtt.configEnv" -}}
{{- range $key, $value := . }}
- name: {{ $key | replace ":" "__" | quote }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Anti-affinity for a component: call with (list $ "silo" "soft"). */}}
{{- define "orleans-mqtt.antiAffinity" -}}
{{- $root := index . 0 -}}
{{- $mode := index . 2 -}}
{{- if eq $mode "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "orleans-mqtt.selector" (list $root (index . 1)) | nindent 12 }}
{{- else if eq $mode "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "orleans-mqtt.selector" (list $root (index . 1)) | nindent 14 }}
{{- end }}
{{- end -}}

{{/*
Host:ShutdownTimeout as a time span, 10 s below a pod's grace period (at least 5 s), so the host finishes its
hand-over or drain before the kubelet's SIGKILL. Argument: the grace period in seconds.
*/}}
{{- define "orleans-mqtt.shutdownTimeout" -}}
{{- $seconds := max 5 (sub (int .) 10) -}}
{{- printf "%02d:%02d:%02d" (div $seconds 3600) (div (mod $seconds 3600) 60) (mod $seconds 60) -}}
{{- end -}}
