#!/usr/bin/env bash
# The simulator at scale: sim/scenarios/year.toml (10,000 nodes, 100,000
# uploads, a year of hourly epochs, 2 % monthly churn) and the same with
# fewer or more nodes and uploads, timed with peak memory.
#
#   cargo build --release -p strand-sim && sim/examples/scale_bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
sim=target/release/strand-sim
[ -x "$sim" ] || { echo "build first: cargo build --release -p strand-sim" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-8s %-9s %-10s %-9s %-9s %-11s %s\n' nodes uploads stripes wall_s peak_MiB repairs lost
for run in "2500 100000" "5000 100000" "10000 100000" "10000 25000" "10000 50000" "20000 200000"; do
  set -- $run
  sed -e "s/^nodes = .*/nodes = $1/; s/^uploads = .*/uploads = $2/" sim/scenarios/year.toml > "$work/s.toml"
  /usr/bin/time -f '%e %M' -o "$work/time" "$sim" run "$work/s.toml" --seed 1 --json > "$work/r.json"
  read -r wall kib < "$work/time"
  python3 - "$1" "$2" "$wall" "$kib" "$work/r.json" <<'PY'
import json, sys
nodes, uploads, wall, kib, path = sys.argv[1:]
r = json.load(open(path))
print(f"{nodes:<8} {uploads:<9} {r['stripes']:<10} {float(wall):<9.1f} {int(kib)/1024:<9.0f} {r['repairs']:<11} {r['stripes_lost']} stripes; traffic {(r['repair_read_bytes']+r['repair_written_bytes'])/r['stored_bytes']:.3f} B/B stored; violations {len(r['violations'])}")
PY
done
