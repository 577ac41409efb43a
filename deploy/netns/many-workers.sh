#!/usr/bin/env bash
# Many hosts on one Linux machine: a Dask scheduler and N workers, each in its own network
# namespace with its own address on a private bridge, and an S3 API server (moto) that only
# the bridge reaches. What tests/runtime/test_many_workers.py does, by hand (root needed).
#
#   deploy/netns/many-workers.sh up 8        # namespaces, S3 on 10.213.90.254:9000, scheduler, 8 workers
#   deploy/netns/many-workers.sh demo        # random A and B on S3, a product whose plan splits k
#   deploy/netns/many-workers.sh kill 3      # SIGKILL worker 3 (run it while demo runs)
#   deploy/netns/many-workers.sh down        # stop everything, delete the namespaces
#
# Logs and pids go to ${STATE:-/tmp/blockdist-netns}. The bridge lives in a hub namespace of its
# own; this (the root) namespace joins it at .254, so nothing listens on this machine's own
# interfaces.
set -euo pipefail

SUBNET=${SUBNET:-10.213.90}
STATE=${STATE:-/tmp/blockdist-netns}
S3_PORT=${S3_PORT:-9000}
S3="http://${SUBNET}.254:${S3_PORT}"
SCHEDULER="tcp://${SUBNET}.1:8786"
PYTHON=${PYTHON:-python}
# Dummy credentials: moto accepts any signed request.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
STORAGE=(--storage-option "endpoint_url=${S3}" --storage-option region=us-east-1)

start() {  # name, command…: in its own session, output to STATE/name.log, pid to STATE/name.pid
  local name=$1
  shift
  setsid "$@" >"${STATE}/${name}.log" 2>&1 &
  echo $! >"${STATE}/${name}.pid"
}

host() {  # role index address: a namespace joined to the hub's bridge
  local ns="bdn-$1"
  ip netns add "${ns}"
  ip -n bdn-hub link add "veth$2" type veth peer name eth0
  ip -n bdn-hub link set eth0 netns "${ns}"
  ip -n bdn-hub link set "veth$2" master br0 up
  ip -n "${ns}" addr add "$3/24" dev eth0
  ip -n "${ns}" link set eth0 up
  ip -n "${ns}" link set lo up
}

up() {
  local workers=${1:-8}
  mkdir -p "${STATE}"
  ip netns add bdn-hub
  ip -n bdn-hub link add br0 type bridge
  ip -n bdn-hub link set br0 up
  ip -n bdn-hub link add vroot type veth peer name bdn-root
  ip -n bdn-hub link set bdn-root netns 1
  ip -n bdn-hub link set vroot master br0 up
  ip addr add "${SUBNET}.254/24" dev bdn-root
  ip link set bdn-root up
  host scheduler 0 "${SUBNET}.1"
  start s3 "${PYTHON}" -m moto.server -H "${SUBNET}.254" -p "${S3_PORT}"
  start scheduler ip netns exec bdn-scheduler "${PYTHON}" -m dask scheduler --host "${SUBNET}.1" \
    --port 8786 --dashboard-address :8787
  for i in $(seq 1 "${workers}"); do
    host "worker-${i}" "${i}" "${SUBNET}.$((10 + i))"
    start "worker-${i}" ip netns exec "bdn-worker-${i}" env OPENBLAS_NUM_THREADS=1 "${PYTHON}" -m dask worker \
      "${SCHEDULER}" --host "${SUBNET}.$((10 + i))" --nthreads 1 --memory-limit 2GiB --no-nanny \
      --name "worker-${i}" --dashboard-address :0 --local-directory "${STATE}/worker-${i}"
  done
  echo "scheduler ${SCHEDULER}, dashboard http://${SUBNET}.1:8787, S3 ${S3}; logs in ${STATE}"
}

demo() {
  "${PYTHON}" -c "import boto3; boto3.client('s3', endpoint_url='${S3}', region_name='us-east-1').create_bucket(Bucket='matrices')"
  blockdist random s3://matrices/a.zarr --shape 1024,65536 --chunks 256,4096 --seed 1 --overwrite "${STORAGE[@]}"
  blockdist random s3://matrices/b.zarr --shape 65536,1024 --chunks 4096,256 --seed 2 --overwrite "${STORAGE[@]}"
  blockdist plan s3://matrices/a.zarr s3://matrices/b.zarr --workers 8 --memory 2GiB "${STORAGE[@]}"
  blockdist matmul s3://matrices/a.zarr s3://matrices/b.zarr s3://matrices/c.zarr --scheduler "${SCHEDULER}" \
    --overwrite --verify "${STORAGE[@]}"
}

kill_worker() {
  kill -KILL -- "-$(cat "${STATE}/worker-$1.pid")"
}

down() {
  for pid in "${STATE}"/*.pid; do
    [[ -e "${pid}" ]] && kill -TERM -- "-$(cat "${pid}")" 2>/dev/null || true
    rm -f "${pid}"
  done
  ip link del bdn-root 2>/dev/null || true
  for ns in $(ip netns list | awk '/^bdn-/ {print $1}'); do
    ip netns del "${ns}"
  done
}

case ${1:-} in
  up) up "${2:-8}" ;;
  demo) demo ;;
  kill) kill_worker "${2:?which worker}" ;;
  down) down ;;
  *) echo "usage: $0 up [N] | demo | kill I | down" >&2; exit 2 ;;
esac
