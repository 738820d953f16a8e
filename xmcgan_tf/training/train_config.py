"""A training run's configuration in named groups, each a frozen dataclass that gin binds.

    train_lib.train(model_dir=..., data=DataConfig(...), schedule=ScheduleConfig(...),
                    optimizer=OptimizerConfig(...), distribution=DistributionConfig(...), ...)

In gin (`gin/runs/train.gin` wires the groups into `train_lib.train`):

    train_config.DataConfig.data_dir = %DATA_DIR
    train_config.ScheduleConfig.num_steps = 5000
    train_config.OptimizerConfig.g_learning_rate = 4e-4

Each group checks its own values when it is made, so a bad binding fails before any network
is built, and each is read by one stage of `train_lib` (data: the input stream and the caption
bank; schedule: the step loop; optimizer: the two Adam optimizers; distribution: the strategy
and the dtype policy).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras

from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import pairing
from xmcgan_tf.data import sentence_embedding as sentence_embedding_lib
from xmcgan_tf.training import distribute


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What the run trains on and how the input pipeline reads it.

    Attributes:
      data_dir: dataset directory written by data_tools (shards + dataset_info.json).
      max_tokens: T; checked against the dataset.
      variant: input_pipeline variant ("single", "two_captions", "label_pairs").
      sentence_embedding: "official", "masked_mean" or "cls".
      label_rule: label pairing rule of "label_pairs" ("largest_area" or "any_shared").
      shuffle_buffer: records in each shuffled window of the training stream.
      random_flip: random left-right flips of the training images (off when captions name
        left and right).
      negative_captions: N > 0: a caption bank of the first N training images (one caption
        each, `input_pipeline.caption_bank`) whose captions are extra negatives of L_sent
        (`model_fn` gets `negative_sentences` and `negative_image_keys`); 0: in-batch
        negatives only, as released.
      counterfactual_captions: batches carry `counterfactual_sentence`, the sentence embedding
        of the chosen caption's counterfactual (a false caption one attribute away; the dataset
        must have them, `data_tools.synthetic_scenes --counterfactual_captions`), the
        negatives of `xmcgan.XMCGAN.counterfactual_weight`; off as released.
    """

    data_dir: str
    max_tokens: int = 17
    variant: str = input_pipeline.SINGLE
    sentence_embedding: str = sentence_embedding_lib.OFFICIAL
    label_rule: str = pairing.LARGEST_AREA
    shuffle_buffer: int = 256
    random_flip: bool = True
    negative_captions: int = 0
    counterfactual_captions: bool = False

    def __post_init__(self):
        if self.variant not in input_pipeline.VARIANTS:
            raise ValueError(f"DataConfig: variant must be one of {input_pipeline.VARIANTS}, "
                             f"got {self.variant!r}")
        sentence_embedding_lib.check_method(self.sentence_embedding)
        _check_at_least("DataConfig", max_tokens=(self.max_tokens, 1),
                        shuffle_buffer=(self.shuffle_buffer, 1),
                        negative_captions=(self.negative_captions, 0))


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """How long the run trains, on what batch, and how often it reports.

    Attributes:
      num_steps: total training steps (a resumed run stops at the same step).
      batch_size: global batch of each update (all replicas), as the released code's
        `batch_size`: a step with `d_steps_per_g_step` updates reads that many batches, e.g.
        2 × 56 at the paper's 128 px setting.
      log_every: steps between scalar logs (trackers average over the interval).
      checkpoint_every: steps between checkpoints (one is always written at the end).
      keep_checkpoints: checkpoints kept on disk.
      sample_every: steps between G_ema sample grids (one is always written at the end).
      num_samples: captions in the sample grid.
    """

    num_steps: int
    batch_size: int = 56
    log_every: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    sample_every: int = 1000
    num_samples: int = 16

    def __post_init__(self):
        _check_at_least("ScheduleConfig", **{
            field.name: (getattr(self, field.name), 1) for field in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The two Adam optimizers (the paper: D 4e-4, G 1e-4, β = (0.5, 0.999)).

    Attributes:
      d_learning_rate: Adam learning rate of D.
      g_learning_rate: Adam learning rate of G.
      beta_1: Adam β1 of both optimizers.
      beta_2: Adam β2 of both optimizers.
    """

    d_learning_rate: float = 4e-4
    g_learning_rate: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999

    def __post_init__(self):
        for name in ("d_learning_rate", "g_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OptimizerConfig: {name} must be > 0, got "
                                 f"{getattr(self, name)}")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"OptimizerConfig: {name} must be in [0, 1), got "
                                 f"{getattr(self, name)}")

    def make(self) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
        """(D's optimizer, G's optimizer); call inside the strategy's scope."""
        return (keras.optimizers.Adam(self.d_learning_rate, beta_1=self.beta_1,
                                      beta_2=self.beta_2),
                keras.optimizers.Adam(self.g_learning_rate, beta_1=self.beta_1,
                                      beta_2=self.beta_2))


@dataclasses.dataclass(frozen=True)
class DistributionConfig:
    """Where and in what precision the step runs.

    Attributes:
      strategy: "default", "mirrored", "multi_worker" or "tpu" (see `distribute`).
      tpu: TPU name/address for strategy "tpu".
      devices: devices of strategy "mirrored" (default: all local GPUs, else the CPU).
      mixed_precision: Keras dtype policy of the networks, e.g. "mixed_bfloat16"; None for
        float32. Losses and logits stay float32.
      jit_compile: compile the step with XLA (strategy "default" only: XLA cannot compile a
        mirrored step's cross-replica updates; TPU steps are compiled anyway).
    """

    strategy: str = "default"
    tpu: str | None = None
    devices: Sequence[str] | None = None
    mixed_precision: str | None = None
    jit_compile: bool = False

    def __post_init__(self):
        if self.strategy not in distribute.STRATEGIES:
            raise ValueError(f"DistributionConfig: strategy must be one of "
                             f"{list(distribute.STRATEGIES)}, got {self.strategy!r}")
        if self.jit_compile and self.strategy != "default":
            # XLA cannot compile the cross-replica updates (optimizer and EMA merge_call) of a
            # mirrored step; TPU programs are compiled anyway.
            raise ValueError(f"jit_compile=True is supported with strategy 'default' only, not "
                             f"{self.strategy!r}")


def _check_at_least(group: str, **values: tuple[int, int]) -> None:
    """Raises ValueError naming the first value below its minimum."""
    for name, (value, minimum) in values.items():
        if value < minimum:
            raise ValueError(f"{group}: {name} must be >= {minimum}, got {value}")
