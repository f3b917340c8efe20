# firstreply: a release build, then a slim runtime image with the models in it.
#   docker build -t firstreply .
#   docker run -p 50051:50051 firstreply            # embedded store under /data
# docker-compose.yml runs it with a Qdrant server and an LLM server.
#
# The embedding engine is compiled with AVX2/FMA when the build machine has
# them: build on (or for) the CPUs it will run on.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/fetch-models.sh \
 && cargo build --release --locked --bin firstreply

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app firstreply \
 && mkdir -p /data && chown firstreply /data
WORKDIR /app
COPY --from=build /src/target/release/firstreply /usr/local/bin/firstreply
COPY --from=build /src/models/multilingual-e5-small /app/models/multilingual-e5-small
COPY knowledge-base /app/knowledge-base
COPY prompts /app/prompts
USER firstreply
ENV FIRSTREPLY_SERVER__ADDR=0.0.0.0:50051 \
    FIRSTREPLY_METRICS_ADDR=0.0.0.0:9464 \
    FIRSTREPLY_DATA_DIR=/data
VOLUME /data
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=6s --start-period=120s \
  CMD ["firstreply", "health", "--addr", "127.0.0.1:50051"]
ENTRYPOINT ["firstreply", "--log-json"]
CMD ["serve"]
