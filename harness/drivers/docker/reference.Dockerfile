# The gossipcert reference node, the Toxiproxy-compatible server, the swarm backend's fault
# agent and the bridges of third-party systems (serf itself comes with the base image) on
# the base image.
# Built by harness/drivers/images.py, which fills BASE with the base image's content-hash tag.
ARG BASE
FROM ${BASE}
# The sources run uninstalled (no distribution metadata), so the version the node and the
# tools report comes from the host's installed package, handed over at build time.
ARG VERSION=0+unknown
# Dependencies first: they change less often than the code, so this layer stays cached.
COPY deps/ /opt/gossipcert/deps/
COPY src/ /opt/gossipcert/src/
ENV GOSSIPCERT_VERSION=${VERSION} \
    PYTHONPATH=/opt/gossipcert/src:/opt/gossipcert/deps \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/gossipcert
# Bytecode compiled once here, not at every container start (PYTHONDONTWRITEBYTECODE
# keeps the running containers from writing any).
RUN python3 -m compileall -q -j 0 /opt/gossipcert
RUN python3 -m gossipcert.reference_node --help >/dev/null && python3 -m gossipcert.chaos.toxiproxy --help >/dev/null \
    && python3 -m gossipcert.adapters.serf --help >/dev/null && serf version >/dev/null \
    && python3 -m gossipcert.chaos.swarm_agent --help >/dev/null
CMD ["python3", "-m", "gossipcert.reference_node", "--help"]
