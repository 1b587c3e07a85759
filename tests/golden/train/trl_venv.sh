#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The Python environment of make_trl_golden.py: TRL 0.9.6 on Debian's torch 1.13 and numpy 1.24
# (python3-torch, python3-numpy; the venv sees them through --system-site-packages). Every
# package is pinned and installed with --no-deps: left to itself pip resolves accelerate and
# datasets versions that pull torch 2 and numpy 2, which the system torch 1.13 cannot load.
#
#   sh tests/golden/train/trl_venv.sh [VENV_DIR]      (default /work/venv-trl2)
#   VENV_DIR/bin/python tests/golden/train/make_trl_golden.py
set -eu
venv=${1:-/work/venv-trl2}
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install --no-deps \
    trl==0.9.6 transformers==4.44.2 tokenizers==0.19.1 huggingface_hub==0.36.2 safetensors==0.8.0 \
    accelerate==0.33.0 datasets==2.20.0 pyarrow==17.0.0 pyarrow-hotfix==0.7 dill==0.3.8 multiprocess==0.70.16 \
    xxhash==4.1.0 pandas==2.1.4 pytz tzdata fsspec==2024.5.0 aiohttp==3.9.5 multidict==6.0.5 yarl==1.9.4 \
    frozenlist==1.4.1 aiosignal==1.3.1 rich==13.7.1 markdown-it-py==3.0.0 mdurl==0.1.2 \
    filelock packaging regex tqdm
"$venv/bin/python" -c "import torch, numpy, trl; from trl import DPOTrainer, RewardTrainer; print('trl', trl.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
