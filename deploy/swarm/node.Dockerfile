# A Swarm node for trying JupyCell's stack on one machine: Debian's Docker engine inside a container
# (docker-in-docker). Built on the local Debian base (scripts/build-base-image.sh) so no registry is needed.
# Used by scripts/swarm-up.sh; not for production.
ARG BASE_IMAGE=jupycell-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io iptables procps \
 && rm -rf /var/lib/apt/lists/*
# The inner engine puts its containers under its own cgroup parent (scripts/swarm-up.sh passes one per node).
ENTRYPOINT ["dockerd", "--host=unix:///var/run/docker.sock", "--storage-driver=overlay2"]
