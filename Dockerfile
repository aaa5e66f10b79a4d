# One image, two commands: `preview-broker broker` (default) and `preview-broker controller`.
# BASE_IMAGE must provide python3 3.11 (the version requirements.lock is made for) with the venv
# module. The default is the official slim image, pinned to Python 3.11 on Debian bookworm: the
# suite of the base `make image` debootstraps. Not by digest: nothing here can ask a registry for
# one; pass BASE_IMAGE=python:3.11-slim-bookworm@sha256:... to pin the bytes too.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# strip (binutils) only in this stage: it drops the debug sections of the wheels' C extensions
# (uvloop's alone carries 10 MB of them).
RUN if ! command -v strip >/dev/null; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
# The locks of `make lock`: every runtime dependency and the build backend at one version, each file
# checked against its hash (both platforms' wheels are in them); nothing is resolved here.
COPY requirements.lock requirements-build.lock ./
COPY pyproject.toml README.md LICENSE ./
COPY preview_broker ./preview_broker
COPY broker ./broker
COPY controller ./controller
COPY kube ./kube
COPY foundation ./foundation
# A virtualenv is a self-contained directory: the final stage copies it and nothing else,
# so no source tree, compiler or pip cache reaches the run-time image. Then what the app
# never loads goes: pip and setuptools, tests, C sources and type stubs, and botocore's API
# models of every AWS service but the ones the controller's S3 client uses (S3, and STS/SSO
# for the credential chain: IRSA's web identity, SSO profiles).
RUN python3 -m venv /opt/preview-broker \
    && /opt/preview-broker/bin/pip install --no-cache-dir --no-compile --require-hashes --no-deps \
         -r requirements.lock -r requirements-build.lock \
    && /opt/preview-broker/bin/pip install --no-cache-dir --no-compile --no-deps --no-build-isolation . \
    && cp LICENSE /opt/preview-broker/LICENSE \
    && cd /opt/preview-broker/lib/python3*/site-packages \
    && rm -rf pip pip-* setuptools setuptools-* pkg_resources _distutils_hack distutils-precedence.pth \
              /opt/preview-broker/bin/pip* \
    && find . -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && find . -type f \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' \
              -o -name '*.h' -o -name '*.cpp' \) -delete \
    && find botocore/data -mindepth 1 -maxdepth 1 -type d ! -name s3 ! -name sts ! -name sso ! -name sso-oidc \
              -exec rm -rf {} + \
    && find . -name '*.so' -exec strip --strip-unneeded {} + \
    && /opt/preview-broker/bin/python -m compileall -q /opt/preview-broker/lib

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
