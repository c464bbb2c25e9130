#!/usr/bin/env bash
# Create the project's virtualenv with Python >= $1 (pyenv's if present, else python$1 on PATH).
set -euo pipefail
want="$1"; venv="$2"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$want'.split('.'))))"; then
  exit 0
fi
candidates=()
if [ -d "$HOME/.pyenv/versions" ]; then
  while IFS= read -r v; do candidates+=("$HOME/.pyenv/versions/$v/bin/python"); done \
    < <(ls "$HOME/.pyenv/versions" | grep -E "^${want//./\\.}\.[0-9]+$" | sort -V -r)
fi
candidates+=("$(command -v "python$want" || true)" "$(command -v python3 || true)")
for py in "${candidates[@]}"; do
  [ -n "$py" ] && [ -x "$py" ] || continue
  if "$py" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$want'.split('.'))))"; then
    echo "creating $venv with $py ($("$py" --version))"
    "$py" -m venv "$venv"
    exit 0
  fi
done
echo "Python >= $want not found (pyenv or PATH); install it first" >&2
exit 1
