#!/usr/bin/env bash
# Repair throughput on a release devnet (BENCHMARKS.md, "Repair"): six
# nodes with 3 s epochs, one upload of SIZE MiB (default chunks), then two
# more nodes join (free to repair), one holder is SIGKILLed; prints the time
# from the kill to the repaired contract and every node's repair metrics.
# Needs `cargo build --release --workspace` first; loopback only; every
# process it starts is stopped on exit.
set -euo pipefail
SIZE=${1:-64}
BIN=$(cd "$(dirname "$0")/../../target/release" && pwd)
WORK=$(mktemp -d -t strand-repair-bench-XXXXXX)
export STRAND_HOME=$WORK/home
mkdir -p "$STRAND_HOME"
$BIN/strand devnet --nodes 6 --block-interval-ms 200 --epoch-blocks 15 --dir $WORK/devnet > $WORK/devnet.out 2>&1 &
DEVNET=$!
trap 'kill -INT $DEVNET 2>/dev/null; wait $DEVNET 2>/dev/null' EXIT
for i in $(seq 1 60); do grep -q 'devnet ready' $WORK/devnet.out && break; sleep 1; done
export STRAND_LEDGER=$(grep -o 'ledger [0-9.:]*' $WORK/devnet.out | cut -d' ' -f2)
$BIN/strand keygen > /dev/null 2>&1
head -c $((SIZE*1024*1024)) /dev/urandom > $WORK/sample.bin
$BIN/strand upload $WORK/sample.bin --json > $WORK/upload.json
UPLOAD=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["upload_id"])' "$WORK/upload.json")
python3 -c 'import json,sys;u=json.load(open(sys.argv[1]));print("upload: %d B in %.3f s, %.1f MB/s of file, %.1f MB/s of fragments (x1.5)" % (u["file_bytes"], u["seconds"], u["file_bytes"]/u["seconds"]/1e6, 1.5*u["file_bytes"]/u["seconds"]/1e6))' "$WORK/upload.json"
# Two more nodes join after the upload: free to take repairs.
EXTRA=()
for n in 7 8; do
  sed -e "s/node-6/node-$n/; s/organisation-6/organisation-$n/; s/site-6/site-$n/" $WORK/devnet/node-6.toml > $WORK/devnet/node-$n.toml
  $BIN/strand-node run --config $WORK/devnet/node-$n.toml > $WORK/devnet/node-$n.out 2> $WORK/devnet/node-$n.log &
  EXTRA+=($!)
done
trap 'kill ${EXTRA[@]} 2>/dev/null; kill -INT $DEVNET 2>/dev/null; wait $DEVNET 2>/dev/null; rm -rf "$WORK"' EXIT
for i in $(seq 1 60); do [ $(cat $WORK/devnet/node-7.out $WORK/devnet/node-8.out | grep -c ready) = 2 ] && break; sleep 1; done
sleep 8
$BIN/strand proofs $UPLOAD --json > $WORK/before.json
VICTIM=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["providers"][0]["provider"])' "$WORK/before.json")
# node index of the victim: the devnet prints node-N with the account prefix
N=$(grep -n "${VICTIM:0:12}" $WORK/devnet.out | head -1 | sed 's/.*node-\([0-9]*\).*/\1/')
echo "victim ${VICTIM:0:12} is node-$N"
KILLED=$(date +%s.%N)
pkill -9 -f "devnet/node-$N.toml"
while true; do
  $BIN/strand proofs $UPLOAD --json > $WORK/now.json
  if python3 - "$VICTIM" "$WORK/now.json" <<'PY'
import json,sys
r=json.load(open(sys.argv[2])); v=sys.argv[1]
sys.exit(0 if all(p["provider"]!=v and p["status"]=="Active" for p in r["providers"]) else 1)
PY
  then break; fi
  sleep 0.5
done
DONE=$(date +%s.%N)
python3 -c "print('loss to repaired: %.1f s' % ($DONE-$KILLED))"
python3 -c 'import json,sys;r=json.load(open(sys.argv[1]));print("epoch now", r["epoch"]); [print(p["provider"][:12], p["repair"]) for p in r["providers"]]' "$WORK/now.json"
for url in $(cat $WORK/devnet.out $WORK/devnet/node-7.out $WORK/devnet/node-8.out | grep -o 'http://[0-9.:]*/metrics'); do
  curl -s $url | grep -E '^strand_node_repair_(bytes_read_total|bytes_written_total|seconds_sum|seconds_count|orders_total)' | sed "s|^|$url |" || true
done
