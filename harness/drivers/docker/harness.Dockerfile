# The gossipcert harness on the base image: `gossipcert` is the entrypoint, so
#   docker run --rm --cap-add NET_ADMIN -v "$PWD:/work" -w /work gossipcert-harness certify ...
# certifies on the process backend inside the container (examples/docker/README.md).
# Built by harness/drivers/images.py, which fills BASE with the base image's content-hash
# tag, puts the runtime dependencies in deps/ and the package (a wheel built from the
# checkout, unpacked) in site/: nothing is fetched during the build.
ARG BASE
FROM ${BASE}
# Dependencies first: they change less often than the code, so this layer stays cached.
COPY deps/ /opt/gossipcert/deps/
COPY site/ /opt/gossipcert/site/
COPY gossipcert /usr/local/bin/gossipcert
# HOME=/tmp: under `docker run --user UID:GID` the user has no home in the image.
ENV PYTHONPATH=/opt/gossipcert/site:/opt/gossipcert/deps \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN chmod 0755 /usr/local/bin/gossipcert && python3 -m compileall -q -j 0 /opt/gossipcert/site \
    && (python3 -m compileall -q -j 0 /opt/gossipcert/deps >/dev/null || true)
# The distribution's metadata must be found (entry points: report writers, version).
RUN gossipcert --version && gossipcert scenarios >/dev/null && python3 -m gossipcert.reference_node --help >/dev/null
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/gossipcert"]
CMD ["--help"]
