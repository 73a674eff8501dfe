# Stand-in for gcr.io/distroless/base-debian12:nonroot where it cannot be
# pulled (scripts/docker.sh): what that image holds for a Go binary linked
# against glibc, taken from Debian bookworm's packages: glibc, CA
# certificates, time zones, /etc/passwd with root, nobody and nonroot
# (65532), /tmp; no shell, no package manager.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS files
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata netbase \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    mkdir -p /out/usr/lib /out/usr/lib64 /out/etc/ssl/certs /out/usr/share /out/tmp /out/home/nonroot /out/root; \
    ln -s usr/lib /out/lib; ln -s usr/lib64 /out/lib64; \
    dpkg -L libc6 | while read -r f; do \
      [ -f "$f" ] || [ -L "$f" ] || continue; \
      case $f in /usr/share/*) continue ;; esac; \
      cp -a --parents "$f" /out/; \
    done; \
    cp -a /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/; \
    cp -a /usr/share/zoneinfo /out/usr/share/; \
    cp -a /etc/services /etc/protocols /etc/nsswitch.conf /etc/host.conf /out/etc/; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >/out/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >/out/etc/group; \
    chmod 1777 /out/tmp; chown 65532:65532 /out/home/nonroot; chmod 0700 /out/root

FROM scratch
COPY --from=files /out/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65532:65532
WORKDIR /home/nonroot
