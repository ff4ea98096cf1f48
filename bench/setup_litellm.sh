#!/usr/bin/env bash
# Create a throwaway virtual environment holding LiteLLM's proxy, used only as a
# point of comparison by bench/overhead.py. LiteLLM is NOT a Passerelle dependency.
#
#   bash bench/setup_litellm.sh            # creates bench/.envs/litellm (git-ignored)
#   LITELLM_VERSION=1.x.y bash bench/setup_litellm.sh
#
# The version is pinned so that runs are comparable; change it deliberately and
# say so next to the results. 1.107.0 was a compromised release and was pulled
# from PyPI: never pin it.
set -euo pipefail

LITELLM_VERSION="${LITELLM_VERSION:-1.102.4}"
PYTHON="${PYTHON:-python3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_dir="$here/.envs/litellm"

if [[ -x "$env_dir/bin/litellm" ]] \
    && "$env_dir/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')"; then
    echo "LiteLLM $LITELLM_VERSION already installed in bench/.envs/litellm"
    exit 0
fi

mkdir -p "$here/.envs"
"$PYTHON" -m venv "$env_dir"
"$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
"$env_dir/bin/python" -c "import importlib.metadata as m; print('installed litellm', m.version('litellm'))"
