#!/usr/bin/env bash
# Full-protocol N-body trainings on one GPU, all models in parallel (each is launch-bound, so they share
# the device well), plus the GPU test module. Resumable: run again with RESUME=1 to continue.
#
#   LIMIT=450 MODELS="egnn segnn ponita fa-gnn" bash benchmarks/gpu_nbody.sh            # first call
#   RESUME=1 LIMIT=450 bash benchmarks/gpu_nbody.sh                                      # continue
#   RESUME=1 FRESH="segnn" bash benchmarks/gpu_nbody.sh     # continue the others, restart the models in FRESH
#   RESUME=1 FRESH="segnn ponita" bash benchmarks/gpu_nbody.sh   # after the recipe changes of sessions 8 and 9
#   COMPILE=1 ...                                            # torch.compile the training steps (not yet
#                                                            # measured on a GPU; CPU: results/nbody_compile.md)
#
# Runs from a source checkout without installing (PYTHONPATH=src). Writes runs/ and
# benchmarks/results/nbody_*_gpu.*; with $OUT set, packs them into $OUT/*.tgz (one per checkpoint).
# To resume on a fresh machine, carry the previous checkpoints as runs/bench-nbody_<model>_gpu/.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
export EQUIV_CACHE="${EQUIV_CACHE:-$PWD/runs/cache}"
LIMIT="${LIMIT:-450}"
MODELS="${MODELS:-egnn segnn ponita fa-gnn}"
mkdir -p runs
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
python3 -c "
import time; t=time.time()
from equiv.data.nbody import generate_charged
generate_charged(); print(f'data ready in {time.time()-t:.1f} s')"
for m in $MODELS; do
  extra=""
  case " ${FRESH:-} " in *" $m "*) fresh=1 ;; *) fresh="" ;; esac
  [ -n "${RESUME:-}" ] && [ -z "$fresh" ] && [ -f "runs/bench-nbody_${m//-/_}_gpu/checkpoint.pt" ] && extra="--resume"
  [ -n "${COMPILE:-}" ] && extra="$extra --compile"
  python3 benchmarks/nbody.py --model "$m" --tag _gpu --device cuda --time-limit "$LIMIT" $extra \
    > "runs/nbody_$m.log" 2>&1 &
done
if [ -z "${RESUME:-}" ]; then python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15; fi
wait
for m in $MODELS; do echo "== $m"; tr '\r' '\n' < "runs/nbody_$m.log" | grep -v "it/s\|s/epoch\]" | tail -6; done
if [ -n "${OUT:-}" ]; then
  # one archive per checkpoint: the device tool returns files of at most 16 MB (PONITA's alone is 12 MB)
  for d in runs/bench-nbody_*_gpu; do
    n=$(basename "$d"); tar czf "$OUT/${n}_ck.tgz" "$d/checkpoint.pt"; tar czf "$OUT/${n}_best.tgz" "$d/best.pt"
  done
  tar czf "$OUT/nbody_logs.tgz" runs/nbody_*.log benchmarks/results/nbody*_gpu* 2>/dev/null
  ls -la "$OUT"
fi
