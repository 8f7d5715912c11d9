# Dockerfile - rnnserve in a container: compile and unit-test in a builder stage, then run the
# binary alone in a slim runtime stage (only the shared libraries it links, a non-root user).
#
#   docker build -t rnnserve .
#   docker run --rm -p 8080:8080 rnnserve                       # serves the bundled "sine" model
#   docker run --rm -p 8080:8080 -v "$PWD/mymodel:/models:ro" rnnserve --config /models/config.json
#
# `make docker-check` builds this file and checks the running container (README "Docker").

FROM debian:bookworm-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config \
        libmicrohttpd-dev libjansson-dev libopenblas-dev zlib1g-dev \
        check libsubunit-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# `make unit` runs every Check runner (they read tests/fixtures and config/, hence in the context);
# `make install` stages exactly what the runtime stage gets.
RUN make -j"$(nproc)" all \
 && make -j"$(nproc)" -Otarget unit \
 && make install PREFIX=/usr/local DESTDIR=/staging

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmicrohttpd12 libjansson4 libopenblas0-pthread \
        zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 rnnserve \
 && useradd --uid 10001 --gid rnnserve --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rnnserve
COPY --from=builder /staging/usr/local/ /usr/local/
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# bash's /dev/tcp: curl would add 16 packages (12 MB) just for the probe. The port is the
# default one; a config that moves it needs --health-cmd too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["/usr/local/bin/rnnserve"]
CMD ["--config", "/usr/local/share/rnnserve/default.json"]
