# One image for every service; docker-compose.yml picks the command per service.
# BASE_IMAGE: any Debian-like image with Python 3.11+ and venv (`make image` builds a local one
# where no registry image can be pulled; see scripts/base-image.sh).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/menuflow
ENV PATH=/opt/menuflow/bin:$PATH
WORKDIR /app
# The pinned dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md setup.py MANIFEST.in ./
COPY proto ./proto
COPY menuflow ./menuflow
COPY flowsvc ./flowsvc
COPY gateway ./gateway
COPY migrations ./migrations
COPY alembic.ini ./
# The runtime stubs only (the .pyi files are for mypy); google/rpc/status.proto comes from
# googleapis-common-protos (a dependency), as in the Makefile.
RUN pip install grpcio-tools==1.85.1 \
    && python -m grpc_tools.protoc -I proto \
       -I "$(python -c 'import google.rpc, pathlib; print(pathlib.Path(google.rpc.__path__[0]).parents[1])')" \
       --python_out=. --grpc_python_out=. proto/menuflow/v1/flow.proto \
    && pip uninstall -y grpcio-tools \
    && pip install --no-deps . && pip check \
    && python -c "import flowsvc.server, gateway.app"
RUN useradd --system menuflow
USER menuflow
