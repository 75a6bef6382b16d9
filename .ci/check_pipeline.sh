#!/usr/bin/env bash
# The pipeline checks CI runs after the tests (.ci/run here, .github/workflows/ci.yml on GitHub):
#  1. `dvc exp run` on a tiny params override, in a temporary copy of the working tree (the checkout's
#     params.yaml, dvc.lock and metrics are never touched); then `dvc status` must be clean;
#  2. `dvc repro --force` twice: model bytes and training metrics must match the first run (.ci/reproducible.py);
#  3. `dvc exp run -S optimized.gradient_accumulation_steps=8` must rerun only train-optimized and compare;
#     its `dvc metrics diff --md` and `dvc exp show --md` are printed;
#  4. `dvc metrics diff --md` of the checkout's committed metrics against $CI_BASE_REV (default: main, or
#     origin/main in a clone of another branch).
# Markdown goes to stdout and, when $CI_SUMMARY names a file (GitHub's job summary), to that file too.
# Needs python, dvc and carbon-pipe on PATH; MNIST from $CARBON_PIPE_DATA_MIRROR, else ../shared's copy when
# there is one, else torchvision's download. $CI_WORKDIR keeps the temporary project there (for upload).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${CI_WORKDIR:-$(mktemp -d)}"
project="$work/project"
summary="$work/summary.md"
mkdir -p "$project"
[ -n "${CI_WORKDIR:-}" ] || trap 'rm -rf "$work"' EXIT

shared_mnist="$repo/../shared/data/mnist/MNIST/raw"
if [ -z "${CARBON_PIPE_DATA_MIRROR:-}" ] && [ -d "$shared_mnist" ]; then
    CARBON_PIPE_DATA_MIRROR="$(cd "$shared_mnist" && pwd)"
    export CARBON_PIPE_DATA_MIRROR
fi
# The copy's own code runs the stages, not the checkout's editable install.
export PYTHONPATH="$project${PYTHONPATH:+:$PYTHONPATH}"
# `dvc exp run -S` writes these into the copy's params.yaml, so the forced `dvc repro` runs use them too.
TINY=(-S data.train_limit=2000 -S data.test_limit=500 -S train.epochs=1 -S energy.measure_power_secs=1)

passed=0
say() { printf '%s\n' "$*" | tee -a "$summary"; }
pass() { passed=$((passed + 1)); say "- $*"; }
fail() {
    say "FAILED: $*"
    say "pipeline: $passed passed, 1 failed"
    [ -z "${CI_SUMMARY:-}" ] || cat "$summary" >> "$CI_SUMMARY"
    exit 1
}
status_is_clean() { [ "$(cd "$project" && dvc status --json)" = "{}" ]; }
stages_run() { grep -o "^Running stage '[^']*'" | cut -d"'" -f2 | sort | tr '\n' ' '; }

say "## Pipeline checks (tiny params: 2000 train / 500 test images, 1 epoch)"
say ""
git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | (cd "$repo" && tar --null --files-from=- --ignore-failed-read -cf -) | tar -xf - -C "$project"
cd "$project"
git init -q
git config user.name "carbon-pipe CI"
git config user.email "ci@carbon-pipe.invalid"
git add -A && git commit -qm "working tree under test"

started=$SECONDS
dvc exp run "${TINY[@]}" > "$work/run1.log" 2>&1 || { cat "$work/run1.log"; fail "dvc exp run on the tiny params"; }
pass "\`dvc exp run\` on the tiny params: ran $(stages_run < "$work/run1.log")in $((SECONDS - started)) s"
status_is_clean || { dvc status; fail "dvc status is not clean after the run"; }
pass "\`dvc status\`: clean"
git add -A && git commit -qm "tiny run"
python "$repo/.ci/reproducible.py" snapshot . "$work/run1.json"

for run in 2 3; do
    started=$SECONDS
    dvc repro --force > "$work/run$run.log" 2>&1 || { cat "$work/run$run.log"; fail "dvc repro --force (run $run)"; }
    python "$repo/.ci/reproducible.py" snapshot . "$work/run$run.json"
    pass "\`dvc repro --force\` (run $run): $((SECONDS - started)) s"
done
status_is_clean || { dvc status; fail "dvc status is not clean after the forced runs"; }
pass "\`dvc status\`: clean after the forced runs"
verdict="$(python "$repo/.ci/reproducible.py" compare "$work"/run{1,2,3}.json)" || { say "$verdict"; fail "the runs differ"; }
pass "$verdict"
git add -A && git commit -qm "forced runs"  # so the experiment's diff shows what it changed, not the baseline's timing noise

started=$SECONDS
dvc exp run -S optimized.gradient_accumulation_steps=8 > "$work/exp.log" 2>&1 \
    || { cat "$work/exp.log"; fail "dvc exp run -S optimized.gradient_accumulation_steps=8"; }
ran="$(stages_run < "$work/exp.log")"
[ "$ran" = "compare train-optimized " ] || fail "the accumulation experiment ran [$ran], expected compare and train-optimized only"
pass "\`dvc exp run -S optimized.gradient_accumulation_steps=8\`: reran only $ran(in $((SECONDS - started)) s)"
say ""
say "### The accumulation experiment against the tiny run: \`dvc metrics diff --md\`"
say ""
dvc metrics diff --md | tee -a "$summary"
say ""
# --only-changed: what differs between the rows; --drop: dependency hashes (code, data) are not results.
show=(--only-changed --drop 'carbon_pipe/|stages/|metrics/')
say "### \`dvc exp show --md ${show[*]}\`"
say ""
dvc exp show --md --no-pager "${show[@]}" | tee -a "$summary"

cd "$repo"
base="${CI_BASE_REV:-main}"
git rev-parse --verify -q "$base^{commit}" > /dev/null || base="origin/$base"  # a clone of another branch
say ""
if git rev-parse --verify -q "$base^{commit}" > /dev/null; then
    say "### Committed metrics of this checkout against $base: \`dvc metrics diff $base --md\`"
    say ""
    dvc metrics diff "$base" --md | tee -a "$summary"
else
    say "No revision ${CI_BASE_REV:-main} here: no metrics diff against a base."
fi
say ""
say "pipeline: $passed passed, 0 failed"
[ -z "${CI_SUMMARY:-}" ] || cat "$summary" >> "$CI_SUMMARY"
