#!/usr/bin/env bash
# Create a throwaway virtual environment holding the two tools bench/dlp/throughput.py compares
# Passerelle's DLP scanner with. Neither is a Passerelle dependency.
#
#   bash bench/dlp/setup_peers.sh        # creates bench/.envs/dlp-peers (git-ignored)
#
# - Microsoft Presidio's AnalyzerEngine (presidio-analyzer), PII detection;
# - Yelp's detect-secrets, secret detection.
#
# Presidio needs a spaCy pipeline. Its default, en_core_web_lg, is not on PyPI, and neither is
# en_core_web_sm under its own name (the spaCy models are published on GitHub, which this
# machine cannot reach). The script still tries `pip install en-core-web-sm` and records what
# happened in bench/.envs/dlp-peers/SPACY_MODEL; without a model, peers.py runs Presidio with a
# blank English spaCy pipeline (tokenizer only): every pattern and checksum recognizer runs,
# the NER-based ones (PERSON, LOCATION, NRP...) find nothing, so the figure is a lower bound of
# Presidio's usual cost. Third-party re-uploads of the models on PyPI are deliberately not used.
#
# Versions are pinned so that runs are comparable; change them deliberately and say so next to
# the results.
set -euo pipefail

PRESIDIO_VERSION="${PRESIDIO_VERSION:-2.2.366}"
DETECT_SECRETS_VERSION="${DETECT_SECRETS_VERSION:-1.5.0}"
PYTHON="${PYTHON:-python3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="$here/.envs/dlp-peers"

if [[ -x "$env_dir/bin/python" ]] \
    && "$env_dir/bin/python" - "$PRESIDIO_VERSION" "$DETECT_SECRETS_VERSION" <<'PY'
import importlib.metadata as m, sys
ok = m.version("presidio-analyzer") == sys.argv[1] and m.version("detect-secrets") == sys.argv[2]
sys.exit(0 if ok else 1)
PY
then
    echo "presidio-analyzer $PRESIDIO_VERSION and detect-secrets $DETECT_SECRETS_VERSION already in bench/.envs/dlp-peers"
    exit 0
fi

mkdir -p "$here/.envs"
"$PYTHON" -m venv "$env_dir"
pip=("$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
"${pip[@]}" "presidio-analyzer==$PRESIDIO_VERSION" "detect-secrets==$DETECT_SECRETS_VERSION"
if "${pip[@]}" en-core-web-sm 2>/dev/null; then
    echo "en_core_web_sm" > "$env_dir/SPACY_MODEL"
else
    echo "blank:en" > "$env_dir/SPACY_MODEL"
    echo "note: en-core-web-sm is not on PyPI; Presidio will run with a blank spaCy pipeline"
fi
"$env_dir/bin/python" -c "import importlib.metadata as m; print('installed presidio-analyzer', m.version('presidio-analyzer'), 'spacy', m.version('spacy'), 'detect-secrets', m.version('detect-secrets'))"
echo "spaCy pipeline for Presidio: $(cat "$env_dir/SPACY_MODEL")"
