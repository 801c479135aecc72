# One image for every service; docker-compose.yml picks the command per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY proto ./proto
COPY menuflow ./menuflow
COPY flowsvc ./flowsvc
COPY gateway ./gateway
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-cache-dir grpcio-tools==1.85.1 \
    && python -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=. \
       proto/menuflow/v1/flow.proto \
    && pip install --no-cache-dir . \
    && pip uninstall -y grpcio-tools
RUN useradd --system menuflow
USER menuflow
