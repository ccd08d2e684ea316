# The images of dindfs. The last stage, dind, is the Docker-in-Docker image:
# Debian's docker.io, and the dindfs command for the mirror, load and save.
# The stage dindfs is the mount itself as a container. The DinD entrypoint
# (tools/dind-entrypoint.sh) prepares the container as moby's hack/dind does,
# starts `dindfs mirror` when the host's dindfs mount is bind-mounted at
# /dindfs, then dockerd with that mirror, and runs the command.
#
#   docker build -t dindfs-dind .                    # on debian:12-slim
#   docker build --target dindfs -t dindfs .         # the mount as a container
#   docker build --build-arg BASE_IMAGE=debian:13-slim -t dindfs-dind .
#   docker run --rm --privileged --tmpfs /var/lib/docker:exec \
#       -v /dindfs:/dindfs dindfs-dind docker pull debian:12-slim
#
# No Docker Hub is needed: scripts/base-image.sh makes debian:12-slim and
# debian:13-slim with debootstrap. The build reaches Debian's archive alone.
ARG BASE_IMAGE=debian:12-slim

# ---- dindfs, built on the same base as it runs on ------------------------
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config libfuse3-dev libcurl4-openssl-dev \
      libsqlite3-dev libssl-dev libjansson-dev libmicrohttpd-dev libarchive-dev \
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler \
 && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt /src/
COPY proto /src/proto
COPY cache /src/cache
COPY fs /src/fs
COPY tools/CMakeLists.txt tools/*.c tools/*.h /src/tools/
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDINDFS_TESTS=OFF >/dev/null \
 && cmake --build /build -j"$(nproc)" --target dindfs \
 && strip /build/dindfs \
 && /build/dindfs --version
# The packages of the shared libraries dindfs links to, for the image below
# (their names differ between releases: libcurl4 and libcurl4t64, ...).
RUN multiarch=$(gcc -print-multiarch) \
 && readelf -d /build/dindfs | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' \
  | while read -r lib; do \
      dpkg -S "*/$lib" | grep -E "/$multiarch/$lib\$" | head -1 | cut -d: -f1; \
    done | sort -u >/build/runtime-packages \
 && test -s /build/runtime-packages && cat /build/runtime-packages

# ---- what both images run dindfs with ----------------------------------------
# Depends only on the list of library packages, not on dindfs's sources: a
# change to dindfs rebuilds the layers that copy it in and no other.
FROM ${BASE_IMAGE} AS runtime
COPY --from=build /build/runtime-packages /usr/local/share/dindfs/runtime-packages
# erofs-utils: the daemon's mkfs.erofs, for the layers' EROFS images
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates erofs-utils $(cat /usr/local/share/dindfs/runtime-packages) \
 && rm -rf /var/lib/apt/lists/*

# ---- the dindfs image: the mount, as a container ------------------------------
# For hosts without a dindfs binary (Docker Desktop's VM, CI runners): its
# entrypoint (tools/dindfs-entrypoint.sh) runs `dindfs mount -f` on the host's
# /var/lib/dindfs/mnt, bound with rshared propagation (compose.yaml; README,
# "Run dindfs as a container").
#   docker build --target dindfs -t dindfs .
FROM runtime AS dindfs
COPY tools/dindfs-entrypoint.sh /usr/local/bin/dindfs-entrypoint
COPY --from=build /build/dindfs /usr/local/bin/dindfs
ENTRYPOINT ["dindfs-entrypoint"]
CMD []

# ---- the Docker-in-Docker image (the last stage: `docker build .` builds it) --
# Its packages are a stage of their own, dind-packages, which depends on
# nothing of dindfs's sources: images that add packages to the DinD image
# (tests/dind_lib.sh's level with podman and skopeo) start from it, and keep
# their own packages cached while dindfs changes.
FROM runtime AS dind-packages
# From trixie on, the docker command is a package of its own (docker-cli).
# dnsmasq: in a level without a network, dindfs-route resolves every name
# the host does not serve to the mirror, which refuses it in one line.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io iptables fuse3 jq pigz xz-utils procps dnsmasq-base \
      $(apt-cache show docker-cli >/dev/null 2>&1 && echo docker-cli) \
 && rm -rf /var/lib/apt/lists/*

FROM dind-packages AS dind
COPY tools/dind-entrypoint.sh /usr/local/bin/dind-entrypoint
COPY tools/dindfs-route.sh /usr/local/bin/dindfs-route
COPY --from=build /build/dindfs /usr/local/bin/dindfs
ENV DINDFS_ROOT=/dindfs
ENTRYPOINT ["dind-entrypoint"]
CMD []
