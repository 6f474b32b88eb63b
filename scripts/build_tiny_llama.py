#!/usr/bin/env python3
"""Build the tiny deterministic Llama model that scripts/vllm-test-server serves.

Run it with the vLLM venv's interpreter (it needs torch, transformers and tokenizers)::

    python scripts/build_tiny_llama.py OUT_DIR

The weights are random (fixed seed, about 0.8 M parameters, float32 safetensors); the tokenizer is a
byte-level BPE trained on a fixed, sorted list of Python standard-library sources, with a Llama 2
chat template. The same interpreter and library versions give byte-identical files. The model is
built in a temporary sibling directory and renamed into place, so OUT_DIR is either absent or
complete; its ``build-info.json`` records this script's SHA-256 so a changed recipe triggers a rebuild.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sysconfig
import time
from pathlib import Path

# These live in the vLLM venv, not in the project's dev environment where mypy runs.
import tokenizers  # type: ignore[import-not-found, unused-ignore]
import torch  # type: ignore[import-not-found, unused-ignore]
import transformers  # type: ignore[import-not-found, unused-ignore]
from tokenizers import (  # type: ignore[import-not-found, unused-ignore]
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (  # type: ignore[import-not-found, unused-ignore]
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

SEED = 0
VOCAB_SIZE = 2048
HIDDEN_SIZE = 128  # 4 heads of 32: vLLM's CPU attention only takes head sizes 32, 64, 80, ... 512
INTERMEDIATE_SIZE = 256
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2  # grouped-query attention, as in Llama 2 70B
MAX_POSITIONS = 2048

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
# The llama3_json tool parser refuses to start unless the vocabulary has these three.
TOOL_TOKENS = ("<|python_tag|>", "<tool_call>", "</tool_call>")
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD, *TOOL_TOKENS)  # ids 0..6, so <s> = 1 and </s> = 2 as in Llama 2

# Standard-library sources to train the tokenizer on; all exist in CPython 3.11 to 3.13.
CORPUS_FILES = (
    "abc.py",
    "argparse.py",
    "ast.py",
    "base64.py",
    "calendar.py",
    "csv.py",
    "dataclasses.py",
    "enum.py",
    "functools.py",
    "inspect.py",
    "json/decoder.py",
    "json/encoder.py",
    "logging/__init__.py",
    "random.py",
    "string.py",
    "textwrap.py",
    "typing.py",
)

# Llama 2's prompt format (meta-llama/llama, generation.py): the system prompt is folded into the first
# user turn, each exchange is `<s>[INST] user [/INST] assistant </s>`, the last user turn is left open.
# Unlike the reference it does not reject other role orders: tool results render as user turns and an
# assistant turn without text content (tool calls) renders empty.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system_message = none -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- if system_message is not none and not loop_messages -%}"
    "{{- bos_token + '[INST] <<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n [/INST]' -}}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{%- if loop.first and system_message is not none -%}"
    "{%- set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + content -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- ' ' + content | trim + ' ' + eos_token -}}"
    "{%- else -%}"
    "{{- bos_token + '[INST] ' + content | trim + ' [/INST]' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


def corpus() -> list[str]:
    """Return the training files, in a fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [stdlib / name for name in sorted(CORPUS_FILES)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(f"standard-library sources missing: {', '.join(missing)}")
    return [str(path) for path in paths]


def build_tokenizer(out: Path) -> None:
    """Train the byte-level BPE tokenizer and save it with its chat template."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train(corpus(), trainer)
    ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    if ids != list(range(len(SPECIAL_TOKENS))) or tokenizer.get_vocab_size() > VOCAB_SIZE:
        raise SystemExit(f"unexpected special-token ids {ids} or vocabulary size {tokenizer.get_vocab_size()}")
    # Like Llama's tokenizer, prepend <s> to plain prompts (chat prompts get it from the template).
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A",
                pair=f"{BOS} $A {BOS} $B",
                special_tokens=[(BOS, SPECIAL_TOKENS.index(BOS))],
            ),
        ]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        additional_special_tokens=list(TOOL_TOKENS),
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(out)


def build_model(out: Path) -> None:
    """Create the randomly initialised Llama model (fixed seed) and save it as safetensors."""
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)


def sha256(path: Path) -> str:
    """Return the SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    """Build the model into the directory named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="model directory to create (replaced if it exists)")
    out: Path = parser.parse_args().out.resolve()
    started = time.monotonic()
    staging = out.with_name(f"{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    build_tokenizer(staging)
    build_model(staging)
    info = {
        "recipe_sha256": sha256(Path(__file__)),
        "seed": SEED,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "files": {path.name: sha256(path) for path in sorted(staging.iterdir())},
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (staging / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    print(f"built {out} in {info['build_seconds']}s")


if __name__ == "__main__":
    main()
