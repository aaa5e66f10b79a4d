# One image, two commands: `preview-broker broker` (default) and `preview-broker controller`.
# BASE_IMAGE must provide python3 (>= 3.11) with the venv module; the default is the official slim image.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY preview_broker ./preview_broker
COPY broker ./broker
COPY controller ./controller
COPY kube ./kube
COPY foundation ./foundation
# A virtualenv is a self-contained directory: the final stage copies it and nothing else,
# so no source tree, compiler or pip cache reaches the run-time image.
RUN python3 -m venv /opt/preview-broker \
    && /opt/preview-broker/bin/pip install --no-cache-dir --no-compile . \
    && /opt/preview-broker/bin/python -m compileall -q /opt/preview-broker/lib \
    && rm -rf /opt/preview-broker/lib/python3*/site-packages/pip /opt/preview-broker/bin/pip*

FROM ${BASE_IMAGE}
COPY --from=build /opt/preview-broker /opt/preview-broker
ENV PATH=/opt/preview-broker/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric UID/GID so Kubernetes can verify runAsNonRoot without a passwd entry.
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["preview-broker"]
CMD ["broker"]
