#!/usr/bin/env bash
# Smoke test of the built image against this machine's PostgreSQL (127.0.0.1:5432, user postgres):
# a fresh database, migrate+seed with the image (compose's `migrate` command), flowsvc and the
# gateway containers as compose runs them (token on both sides), then flowsvc's gRPC health
# (compose's own healthcheck command, run in the container), the gateway's /healthz and /readyz.
# Containers and database are removed afterwards, whatever happened.
set -euo pipefail
IMAGE=${IMAGE:-menuflow:dev}
PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
run_id="smoke$$"
db="menuflow_$run_id"
url="postgresql://$PGUSER@$PGHOST:$PGPORT/$db"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
http_port=$(free_port)
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

cleanup() {
    docker rm -f "menuflow-$run_id-flowsvc" "menuflow-$run_id-gateway" >/dev/null 2>&1 || true
    dropdb --if-exists "$db" || true
}
trap cleanup EXIT
logs() {
    for name in flowsvc gateway; do
        echo "--- $name"; docker logs "menuflow-$run_id-$name" 2>&1 | tail -20 || true
    done
}

createdb "$db"
echo "== migrate + seed ($db)"
docker run --rm --network host -e DATABASE_URL="$url" "$IMAGE" \
    sh -c "alembic upgrade head && python -m flowsvc.seed"

echo "== flowsvc on 127.0.0.1:$grpc_port, gateway on 127.0.0.1:$http_port"
docker run -d --name "menuflow-$run_id-flowsvc" --network host \
    -e DATABASE_URL="$url" -e FLOWSVC_LISTEN="127.0.0.1:$grpc_port" -e FLOWSVC_TOKEN="$token" \
    "$IMAGE" python -m flowsvc >/dev/null
docker run -d --name "menuflow-$run_id-gateway" --network host \
    -e GATEWAY_LISTEN_HOST=127.0.0.1 -e GATEWAY_PORT="$http_port" \
    -e FLOWSVC_TARGET="127.0.0.1:$grpc_port" -e FLOWSVC_TOKEN="$token" \
    -e META_APP_SECRET=smoke -e META_VERIFY_TOKEN=smoke -e META_ACCESS_TOKEN=smoke \
    "$IMAGE" python -m gateway >/dev/null

health="import grpc; from grpc_health.v1 import health_pb2, health_pb2_grpc; ch = grpc.insecure_channel('127.0.0.1:$grpc_port'); print(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2))"
get() { python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())" "$1"; }

ok=""
for _ in $(seq 60); do
    if docker exec "menuflow-$run_id-flowsvc" python -c "$health" 2>/dev/null | grep -q SERVING \
        && get "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 \
        && get "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; then
        ok=1
        break
    fi
    sleep 1
done
if [ -z "$ok" ]; then
    echo "image smoke test FAILED: the services did not become healthy within 60 s"
    logs
    exit 1
fi
echo "flowsvc health: $(docker exec "menuflow-$run_id-flowsvc" python -c "$health" | tr -d '\n')"
echo "gateway /healthz: $(get "http://127.0.0.1:$http_port/healthz")"
echo "gateway /readyz: $(get "http://127.0.0.1:$http_port/readyz")"
echo "image smoke test passed"
