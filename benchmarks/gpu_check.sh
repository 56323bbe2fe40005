#!/usr/bin/env bash
# GPU check: run the demo's torch workload (pairwise_sq_dists) on CUDA through the workflow and print
# the timing files. Needs a CUDA build of torch and a GPU; run from the repository root:
#     bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch")'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r Snakefile rules scripts isobench prompts config demo envs "$work"/
sha=fcefefa521ff7d97797fbcb2a3c37b20075c4b20   # the demo's "[Perf] Vectorize pairwise_sq_dists" commit
mkdir -p "$work/gpu/extractions"
cp "demo/extractions/$sha.json" "$work/gpu/extractions/"
cat > "$work/config/gpu.yaml" <<YAML
sources:
  demo:
    repo: "isobench:demo"
    repo_name: isobench/demokit
    extractions: gpu/extractions
    generators: demo/generators
    measure: {rounds: 10, warmup: 3, warmup_ms: 500, repeat: 20, timeout_s: 300, flush_l2: true}
YAML
(cd "$work" && python3 -m snakemake --cores 4 --resources gpu=1 --configfile config/gpu.yaml --quiet rules)
for rev in base head main; do
  echo "== timing_$rev.json"
  python3 - "$work/results/demo/$sha/timing_$rev.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
s = t["stats"] or {}
print(f"status={t['status']} category={t['category']} device={t['device']} timer={t['timer']}")
print(f"gpu={t['env'].get('gpu')} driver={t['env'].get('gpu_driver')} cuda={t['env'].get('cuda')} torch={t['env'].get('torch')}")
print(f"median={s.get('median')} ms iqr={s.get('iqr')} cv={s.get('cv')} n={s.get('n')} warnings={t['warnings']}")
PY
done
python3 -c "
import json; r = json.load(open('$work/results/demo/$sha/record.json'))
print('base->head', json.dumps(r['comparisons']['base_head']))"
