# One image for both hosts, the published silo in /app/silo and the gateway in /app/gateway; the command picks one
# (charts/orleans-mqtt sets it):
#   docker build -t orleans-mqtt:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v mqtt-data:/var/lib/orleans-mqtt orleans-mqtt:0.1.0 dotnet /app/silo/Orleans.Mqtt.Silo.dll
#   docker run --read-only --tmpfs /tmp orleans-mqtt:0.1.0 dotnet /app/gateway/Orleans.Mqtt.Gateway.dll
# Configuration comes from the environment (docs/configuration.md); the image sets none of it.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish silo/Orleans.Mqtt.Silo -c Release --nologo -o /out/silo \
 && dotnet publish gateway/Orleans.Mqtt.Gateway -c Release --nologo -o /out/gateway

FROM mcr.microsoft.com/dotnet/aspnet:10.0
COPY --from=build /out/ /app/
# The silo's data directory (Storage:DataDirectory) is a volume; nothing else is written outside /tmp, so the root
# file system can be mounted read-only.
RUN mkdir -p /var/lib/orleans-mqtt && chown 1654:1654 /var/lib/orleans-mqtt
VOLUME /var/lib/orleans-mqtt
# The base image's unprivileged "app" user.
USER 1654:1654
WORKDIR /app
EXPOSE 1883 8083 8883 8080 11111 30000
# Exec form, no shell in between: dotnet is PID 1 and gets SIGTERM itself, which stops the host gracefully (a silo
# hands its sessions over before it leaves the cluster, a gateway closes its connections).
CMD ["dotnet", "/app/gateway/Orleans.Mqtt.Gateway.dll"]
