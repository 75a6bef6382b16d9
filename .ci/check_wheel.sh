#!/usr/bin/env bash
# The package from outside this repository, as a user gets it:
#  1. `python -m build`: the sdist, then the wheel built from that sdist (so the sdist is complete);
#  2. the wheel installed, not editable, into a fresh venv, without the `train` extra: no torch in it;
#  3. `carbon-pipe --version`, shell completion, `params --defaults`;
#  4. in an empty folder: `plan` and `intensity` on a trace in Let's Wait Awhile's format, with no params file;
#  5. in a new git repository with a 20-line training script written here (no file of this repository):
#     `carbon-pipe init --command`, `dvc repro`, `dvc exp run -S`, `carbon-pipe experiments`;
#  6. nothing of it imported torch; the venv's size is printed.
# Needs python3 (3.10+), git and PyPI (the wheel's dependencies). $CI_WORKDIR keeps the venvs and the project.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${CI_WORKDIR:-$(mktemp -d)}"
mkdir -p "$work"
[ -n "${CI_WORKDIR:-}" ] || trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }

echo "## The wheel outside the repository"
# Built from a copy of the files git sees (tracked, and untracked but not ignored): .ci/run starts this beside the
# editable install, whose build writes its egg-info into the checkout.
mkdir -p "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf -) \
    | tar -xf - -C "$work/src"
python3 -m venv "$work/build-venv"
"$work/build-venv/bin/pip" install -q build
"$work/build-venv/bin/python" -m build --outdir "$work/dist" "$work/src" > "$work/build.log" 2>&1 \
    || { cat "$work/build.log"; fail "python -m build"; }
ls "$work"/dist/carbon_pipe-*.tar.gz "$work"/dist/carbon_pipe-*.whl > /dev/null || fail "no sdist or wheel built"
echo "- built $(cd "$work/dist" && ls | tr '\n' ' ')"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/carbon_pipe-*.whl || fail "pip install of the wheel"
export PATH="$work/venv/bin:$PATH"
unset PYTHONPATH
cd "$work"  # never the checkout: the installed package is what runs
python -c "import carbon_pipe, sys; sys.exit('site-packages' not in carbon_pipe.__file__)" \
    || fail "carbon_pipe is not imported from the venv's site-packages"
python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
    || fail "torch is in the venv without the train extra"
echo "- installed without torch: $(du -sm "$work/venv" | cut -f1) MB venv"

[ "$(carbon-pipe --version)" = "carbon-pipe $(python -c 'import carbon_pipe; print(carbon_pipe.__version__)')" ] \
    || fail "carbon-pipe --version"
completion="$(_CARBON_PIPE_COMPLETE=complete_bash COMP_WORDS="carbon-pipe pl" COMP_CWORD=1 carbon-pipe)"
echo "$completion" | grep -q plan || fail "bash completion of 'carbon-pipe pl' gave [$completion]"
# to a file, not `| grep -q`: grep stops reading at its match, and pipefail would count the writer's broken pipe
carbon-pipe params --defaults > "$work/defaults.yaml" || fail "carbon-pipe params --defaults"
grep -q "expected_duration" "$work/defaults.yaml" || fail "carbon-pipe params --defaults has no expected_duration"
echo "- --version, completion, params --defaults"

mkdir "$work/empty" && cd "$work/empty"
python - <<'EOF'
import time
start = int(time.time() // 3600 * 3600) - 3600
rows = [f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start + i * 1800))},{300 + 150 * ((i % 48) < 24)}" for i in range(120)]
open("trace.csv", "w").write("Time,Carbon Intensity\n" + "\n".join(rows) + "\n")
EOF
carbon-pipe plan --duration 90min --max-wait 12h --trace trace.csv --json > plan.json || fail "plan --trace"
python -c "import json; p = json.load(open('plan.json')); assert p['clock'] == 'real' and p['duration_source'] == 'option', p"
carbon-pipe intensity --trace trace.csv > /dev/null || fail "intensity --trace"
if carbon-pipe plan --duration 90 --trace trace.csv 2> unitless.err; then fail "plan --duration 90 was accepted"; fi
grep -q "90min" unitless.err || fail "plan --duration 90 did not suggest 90min: $(cat unitless.err)"
[ "$(ls)" = "$(printf 'plan.json\ntrace.csv\nunitless.err')" ] || fail "plan or intensity wrote files: $(ls)"
echo "- plan and intensity in an empty folder (no params file), a unitless duration refused"

mkdir "$work/project" && cd "$work/project"
git init -q && git config user.name "carbon-pipe CI" && git config user.email "ci@carbon-pipe.invalid"
cat > train.py <<'EOF'
"""A tiny training script: logistic regression on one feature, in plain Python."""
import argparse, json, math, os, random
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--lr", type=float, default=0.5)
args = parser.parse_args()
random.seed(0)
points = [(x, int(x > 0.2)) for x in (random.uniform(-1, 1) for _ in range(2000))]
w, b = 0.0, 0.0
for epoch in range(args.epochs):
    for x, y in points:
        p = 1 / (1 + math.exp(-(w * x + b)))
        w, b = w + args.lr * (y - p) * x, b + args.lr * (y - p)
right = sum((w * x + b > 0) == bool(y) for x, y in points)
metrics = os.environ.get("CARBON_PIPE_METRICS", "metrics.json")
with open(metrics, "w") as handle:
    json.dump({"final_accuracy": 100 * right / len(points), "epochs": [], "train_samples": len(points)}, handle)
print(f"accuracy {100 * right / len(points):.1f} %")
EOF
git add train.py && git commit -qm "a training script"
carbon-pipe init --command "python train.py --epochs 20" --duration 1min > init.log 2>&1 || { cat init.log; fail "carbon-pipe init"; }
[ -f dvc.yaml ] && [ -f params.yaml ] && [ -f CARBON_PIPE.md ] && [ -d .dvc ] || fail "init did not write its files"
if carbon-pipe init --command "python train.py" 2> again.err; then fail "a second init overwrote the files"; fi
dvc repro > repro.log 2>&1 || { cat repro.log; fail "dvc repro"; }
[ -f metrics/summary.json ] || fail "dvc repro wrote no metrics/summary.json"
git add -A && git commit -qm "carbon-pipe init and a first run"
dvc exp run -S scheduler.expected_duration=2min > exp.log 2>&1 || { cat exp.log; fail "dvc exp run -S"; }
dvc exp run -S +scheduler.max_wait=6h > exp2.log 2>&1 || { cat exp2.log; fail "dvc exp run -S +key"; }
carbon-pipe experiments > experiments.txt || fail "carbon-pipe experiments"
cat experiments.txt
echo "- a new git repository: init, dvc repro, two dvc exp run -S, carbon-pipe experiments"

python - <<'EOF' || fail "an own-command project imported torch"
import sys
import carbon_pipe.cli, carbon_pipe.pipeline.run_command, carbon_pipe.pipeline.compare  # noqa: F401
from carbon_pipe import plan, track, wait_for_window  # noqa: F401
sys.exit("torch" in sys.modules)
EOF
echo "wheel: passed; venv $(du -sm "$work/venv" | cut -f1) MB (no torch)"
