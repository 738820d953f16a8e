"""Tests of xmcgan_tf.data.input_pipeline on small generated TFRecord datasets."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.data import fake_records
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema

NUM_IMAGES = 24
STORED_SIZE = (16, 24)  # [H, W]; resized to a square of IMAGE_SIZE
IMAGE_SIZE = 8
T, D = 6, 4
CAPTIONS = 3
NUM_LABELS = 3
Z_DIM = 16
BATCH = 4
SHUFFLE_BUFFER = 8  # small: a training pipeline fills its buffer before the first batch
CONTENT = dict(seed=0, image_size=STORED_SIZE, max_tokens=T, embedding_dim=D,
               captions_per_image=CAPTIONS, num_labels=NUM_LABELS)


def _write(data_dir: str, num_images: int = NUM_IMAGES, **overrides) -> schema.DatasetInfo:
    content = {**CONTENT, **overrides}
    return fake_records.write_fake_dataset(data_dir, num_images=num_images, **content)


def _expected_image(record: fake_records.FakeRecord) -> np.ndarray:
    """Bilinear [16, 24] -> [8, 8] with half-pixel centres, computed by hand.

    Rows: source coordinate (i + 0.5) * 2 - 0.5 = 2i + 0.5, the mean of rows 2i and 2i + 1.
    Columns: (j + 0.5) * 3 - 0.5 = 3j + 1, exactly column 3j + 1.
    """
    image = record.image.astype(np.float64)
    rows = 0.5 * (image[0::2] + image[1::2])  # [8, 24, 3]
    return (rows[:, 1::3] / 255.0).astype(np.float32)  # [8, 8, 3]


def _numpy_sentence(words: np.ndarray, num_tokens: int, method: str) -> np.ndarray:
    if method == "official":
        return words.sum(axis=0) / num_tokens
    if method == "masked_mean":
        return words[:num_tokens].mean(axis=0)
    return words[0]


def _caption_index(caption: bytes) -> int:
    return int(caption.decode().rsplit(" ", 1)[1])


def _make(data_dir: str, split: str = "train", **kwargs) -> tf.data.Dataset:
    args = dict(batch_size=BATCH, training=False, max_tokens=T, embedding_dim=D,
                image_size=IMAGE_SIZE, z_dim=Z_DIM, shuffle_buffer=SHUFFLE_BUFFER)
    args.update(kwargs)
    return input_pipeline.make_dataset(data_dir, split, **args)


def _take(dataset: tf.data.Dataset, count: int) -> list[dict]:
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def _assert_batches_equal(test: tf.test.TestCase, a: list[dict], b: list[dict]) -> None:
    test.assertEqual(len(a), len(b))
    for x, y in zip(a, b):
        test.assertEqual(sorted(x), sorted(y))
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def mirrored_batch_shapes(data_dir: str) -> list[dict]:
    """Per-replica shapes and captions of one batch from `distribute_datasets_from_function`.

    Needs two logical CPUs. Returns, per replica, {field: shape} and "captions": [str].
    """
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dataset = strategy.distribute_datasets_from_function(
        lambda context: _make(data_dir, training=True, input_context=context))
    batch = next(iter(dataset))
    local = {key: strategy.experimental_local_results(value) for key, value in batch.items()}
    return [{"image": local["image"][r].shape.as_list(), "words": local["words"][r].shape.as_list(),
             "captions": [c.decode() for c in local["caption"][r].numpy()]}
            for r in range(strategy.num_replicas_in_sync)]


def _configure_two_cpus() -> bool:
    """Splits the CPU into two logical devices if TF has not started yet; True if there are 2."""
    try:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    except RuntimeError:
        pass  # Already initialised: use what exists.
    return len(tf.config.list_logical_devices("CPU")) >= 2


class MirroredStrategyTest(tf.test.TestCase):
    """First in the file: in a fresh process it can still split the CPU into two devices."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.two_cpus = _configure_two_cpus()  # before anything starts TF
        cls.data_dir = tempfile.mkdtemp()
        _write(cls.data_dir, num_images=8, splits=("train",))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.data_dir, ignore_errors=True)
        super().tearDownClass()

    def test_mirrored_strategy_per_replica_batches(self):
        expected = [{"image": [BATCH // 2, IMAGE_SIZE, IMAGE_SIZE, 3], "words": [BATCH // 2, T, D]}
                    ] * 2
        if self.two_cpus:
            replicas = mirrored_batch_shapes(self.data_dir)
        else:
            replicas = self._in_fresh_process()
        self.assertEqual([{k: r[k] for k in ("image", "words")} for r in replicas], expected)
        # The global batch is split: the replicas hold different examples.
        self.assertEmpty(set(replicas[0]["captions"]) & set(replicas[1]["captions"]))

    def _in_fresh_process(self) -> list[dict]:
        # TF already started with one CPU device in this process: check in a fresh one.
        script = ("import json, sys; from tests.data import test_input_pipeline as t; "
                  "assert t._configure_two_cpus(); "
                  "print(json.dumps(t.mirrored_batch_shapes(sys.argv[1])))")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = subprocess.run([sys.executable, "-c", script, self.data_dir], cwd=root, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return json.loads(result.stdout.strip().splitlines()[-1])


class InputPipelineTest(tf.test.TestCase, parameterized.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = tempfile.mkdtemp()
        _write(cls.data_dir)
        cls.records = fake_records.records_by_caption("train", num_images=NUM_IMAGES, **CONTENT)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.data_dir, ignore_errors=True)
        super().tearDownClass()

    def _record(self, caption: bytes) -> fake_records.FakeRecord:
        return self.records[caption.decode()]

    def test_dataset_info(self):
        info = input_pipeline.dataset_info(self.data_dir)
        self.assertEqual((info.max_tokens, info.embedding_dim), (T, D))
        self.assertEqual(info.splits, {"train": NUM_IMAGES, "val": NUM_IMAGES})

    def test_element_spec(self):
        spec = _make(self.data_dir).element_spec
        expected = {"image": ([BATCH, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32),
                    "words": ([BATCH, T, D], tf.float32), "word_mask": ([BATCH, T], tf.float32),
                    "sentence": ([BATCH, D], tf.float32), "z": ([BATCH, Z_DIM], tf.float32),
                    "label": ([BATCH], tf.int64), "caption": ([BATCH], tf.string),
                    "image_key": ([BATCH], tf.int64)}
        self.assertEqual(sorted(spec), sorted(expected))
        for key, (shape, dtype) in expected.items():
            self.assertEqual(spec[key].shape.as_list(), shape, key)
            self.assertEqual(spec[key].dtype, dtype, key)

    @parameterized.parameters("official", "masked_mean", "cls")
    def test_eval_values_match_records(self, method):
        batches = _take(_make(self.data_dir, sentence_embedding=method), -1)
        self.assertLen(batches, NUM_IMAGES // BATCH)  # one pass, no partial batch
        seen, chosen = [], set()
        for batch in batches:
            for i, caption in enumerate(batch["caption"]):
                record = self._record(caption)
                k = _caption_index(caption)
                chosen.add(k)
                seen.append(record.filename)
                image = batch["image"][i]
                self.assertTrue(np.all((image >= 0.0) & (image <= 1.0)))
                self.assertAllClose(image, _expected_image(record), atol=1e-5)
                self.assertAllClose(batch["words"][i], record.embeddings[k])
                self.assertAllEqual(batch["word_mask"][i],
                                    (np.arange(T) < record.num_tokens[k]).astype(np.float32))
                self.assertAllClose(
                    batch["sentence"][i],
                    _numpy_sentence(record.embeddings[k], record.num_tokens[k], method),
                    atol=1e-5)
                self.assertEqual(batch["label"][i], record.label)
        self.assertEqual(seen, sorted(seen))  # shards and records in file order
        self.assertLen(set(seen), NUM_IMAGES)
        self.assertGreater(len(chosen), 1)  # captions are drawn, not always the first

    def test_eval_pass_and_ordered_examples_agree(self):
        """Training sample grids, evaluation and the judge condition an image on the same
        caption and z: the ordered pass of make_dataset and ordered_examples are equal."""
        ordered = _take(input_pipeline.ordered_examples(
            self.data_dir, "train", image_size=IMAGE_SIZE, batch_size=BATCH, seed=3,
            z_dim=Z_DIM), -1)
        passed = _take(_make(self.data_dir, seed=3), -1)
        self.assertLen(passed, len(ordered))
        for a, b in zip(passed, ordered):
            self.assertAllEqual(a["caption"], b["caption"])
            for key in ("image", "words", "word_mask", "sentence", "z", "label"):
                self.assertAllClose(a[key], b[key], atol=1e-6, msg=key)

    def test_caption_bank_and_image_keys(self):
        ordered = _take(input_pipeline.ordered_examples(
            self.data_dir, "train", image_size=IMAGE_SIZE, batch_size=NUM_IMAGES, seed=3), 1)[0]
        keys = ordered["image_key"]
        self.assertLen(set(keys.tolist()), NUM_IMAGES)  # one key per image
        sentences, bank_keys = input_pipeline.caption_bank(
            self.data_dir, "train", size=5, seed=3, max_tokens=T, embedding_dim=D)
        self.assertEqual(sentences.shape, (5, D))
        self.assertAllClose(sentences, ordered["sentence"][:5])
        self.assertAllEqual(bank_keys, keys[:5])
        # Training examples carry the key of their image, whichever caption they drew.
        trained = _take(_make(self.data_dir, training=True, repeat=2, random_flip=False), -1)
        trained_keys = np.concatenate([b["image_key"] for b in trained])
        self.assertEqual(set(trained_keys.tolist()), set(keys.tolist()))
        by_key = {}
        for batch in trained:
            for key, image in zip(batch["image_key"], batch["image"]):
                by_key.setdefault(int(key), image)
                self.assertAllClose(by_key[int(key)], image)
        all_sentences, _ = input_pipeline.caption_bank(
            self.data_dir, "train", size=1000, seed=3, max_tokens=T, embedding_dim=D)
        self.assertLen(all_sentences, NUM_IMAGES)
        with self.assertRaisesRegex(ValueError, "caption bank size"):
            input_pipeline.caption_bank(self.data_dir, "train", size=0, seed=3, max_tokens=T,
                                        embedding_dim=D)

    def test_eval_is_deterministic_and_never_flips(self):
        dataset = _make(self.data_dir)
        _assert_batches_equal(self, _take(dataset, -1), _take(dataset, -1))
        # Another seed: the same images, other draws of z (and of captions).
        first, other = _take(dataset, 1)[0], _take(_make(self.data_dir, seed=5), 1)[0]
        self.assertAllEqual(first["image"], other["image"])
        self.assertNotAllClose(first["z"], other["z"])

    def test_training_flips_and_draws_captions(self):
        batches = _take(_make(self.data_dir, training=True), 3 * NUM_IMAGES // BATCH)
        flipped = unflipped = 0
        captions_per_image = {}
        for batch in batches:
            for i, caption in enumerate(batch["caption"]):
                record = self._record(caption)
                k = _caption_index(caption)
                captions_per_image.setdefault(record.filename, set()).add(k)
                expected = _expected_image(record)
                image = batch["image"][i]
                if np.allclose(image, expected, atol=1e-5):
                    unflipped += 1
                else:
                    self.assertAllClose(image, expected[:, ::-1], atol=1e-5)
                    flipped += 1
                self.assertAllClose(batch["words"][i], record.embeddings[k])
                self.assertAllClose(batch["sentence"][i], _numpy_sentence(
                    record.embeddings[k], record.num_tokens[k], "official"), atol=1e-5)
        self.assertGreater(flipped, 5)
        self.assertGreater(unflipped, 5)
        # Captions other than 0 are drawn; over 3 epochs most 3-caption images show >= 2.
        self.assertGreater(sum(len(ks) >= 2 for ks in captions_per_image.values()),
                           NUM_IMAGES // 3)

    def test_training_without_random_flip_keeps_every_image_as_it_is(self):
        batches = _take(_make(self.data_dir, training=True, random_flip=False), 2)
        for batch in batches:
            for i, caption in enumerate(batch["caption"]):
                expected = _expected_image(self._record(caption))
                self.assertAllClose(batch["image"][i], expected, atol=1e-5)

    def test_z_is_standard_normal_and_reproducible(self):
        a = _take(_make(self.data_dir, training=True, seed=3), 4)
        b = _take(_make(self.data_dir, training=True, seed=3), 4)
        c = _take(_make(self.data_dir, training=True, seed=4), 4)
        _assert_batches_equal(self, a, b)
        self.assertNotAllClose(np.stack([x["z"] for x in a]), np.stack([x["z"] for x in c]))
        z = np.concatenate([x["z"] for x in a]).ravel()  # 256 samples
        self.assertLess(abs(z.mean()), 0.25)
        self.assertLess(abs(z.std() - 1.0), 0.25)

    def test_repeat_counts_passes(self):
        self.assertLen(_take(_make(self.data_dir, repeat=2), -1), 2 * NUM_IMAGES // BATCH)
        self.assertLen(_take(_make(self.data_dir, training=True, repeat=1), -1),
                       NUM_IMAGES // BATCH)

    @parameterized.parameters("single", "two_captions", "label_pairs")
    def test_iterator_checkpoint_restores_next_batch(self, variant):
        dataset = _make(self.data_dir, training=True, variant=variant, seed=7)
        iterator = iter(dataset)
        for _ in range(3):
            next(iterator)
        checkpoint = tf.train.Checkpoint(iterator=iterator)
        path = checkpoint.save(os.path.join(self.get_temp_dir(), variant, "ckpt"))
        expected = [{k: v.numpy() for k, v in next(iterator).items()} for _ in range(4)]
        # A fresh iterator of a fresh dataset, restored from the checkpoint.
        restored = iter(_make(self.data_dir, training=True, variant=variant, seed=7))
        tf.train.Checkpoint(iterator=restored).restore(path).assert_consumed()
        got = [{k: v.numpy() for k, v in next(restored).items()} for _ in range(4)]
        _assert_batches_equal(self, expected, got)

    @parameterized.parameters("single", "two_captions")
    def test_start_position_continues_the_stream(self, variant):
        """Rebuilt from the position after a batch's last example, the stream goes on as the
        uninterrupted one, across an epoch boundary (6 batches per epoch here)."""
        batches = _take(_make(self.data_dir, training=True, variant=variant, seed=7), 10)
        self.assertAllEqual(batches[5]["position"][-1], [0, NUM_IMAGES - 1])
        self.assertAllEqual(batches[6]["position"][0], [1, 0])
        for stop in (2, 4, 5):
            epoch, offset = batches[stop]["position"][-1]
            resumed = _take(_make(self.data_dir, training=True, variant=variant, seed=7,
                                  start=(int(epoch), int(offset) + 1)), 10 - stop - 1)
            _assert_batches_equal(self, batches[stop + 1:], resumed)

    def test_label_pairs_have_no_position(self):
        batch = _take(_make(self.data_dir, training=True, variant="label_pairs"), 1)[0]
        self.assertNotIn("position", batch)

    def test_input_context_shards_and_splits_batch(self):
        captions = []
        for pipeline in range(2):
            context = tf.distribute.InputContext(num_input_pipelines=2,
                                                 input_pipeline_id=pipeline,
                                                 num_replicas_in_sync=4)
            dataset = _make(self.data_dir, batch_size=8, input_context=context)
            self.assertEqual(dataset.element_spec["image"].shape[0], 2)
            self.assertEqual(dataset.options().experimental_distribute.auto_shard_policy,
                             tf.data.experimental.AutoShardPolicy.OFF)
            captions.append({c.decode() for b in _take(dataset, -1) for c in b["caption"]})
        # Shard 0 holds images 0..11, shard 1 images 12..23.
        images = [{c.rsplit(" caption ", 1)[0] for c in found} for found in captions]
        self.assertEqual(images[0], {f"train image {i}" for i in range(12)})
        self.assertEqual(images[1], {f"train image {i}" for i in range(12, 24)})
        self.assertEqual(_make(self.data_dir).options().experimental_distribute.auto_shard_policy,
                         tf.data.experimental.AutoShardPolicy.AUTO)


class InputPipelineErrorTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
        _write(self.data_dir, num_images=8, splits=("train",))

    @parameterized.parameters((T + 1, D, "tokens per caption T: dataset 6, model 7"),
                              (T, D + 2, "embedding dim D: dataset 4, model 6"))
    def test_token_or_dim_mismatch(self, max_tokens, embedding_dim, message):
        with self.assertRaisesRegex(schema.DatasetError, message):
            _make(self.data_dir, max_tokens=max_tokens, embedding_dim=embedding_dim)

    def test_no_shards(self):
        with self.assertRaisesRegex(schema.DatasetError, "no shards for split 'val'"):
            _make(self.data_dir, split="val")

    def test_no_dataset_info(self):
        with self.assertRaisesRegex(schema.DatasetError, "dataset_info.json not found"):
            _make(tempfile.mkdtemp(dir=self.get_temp_dir()))

    def test_missing_shard(self):
        os.remove(os.path.join(self.data_dir, schema.shard_name("train", 0, 2)))
        with self.assertRaisesRegex(schema.DatasetError,
                                    r"incomplete.*train.tfrecord-00000-of-00002"):
            _make(self.data_dir)

    def test_fewer_images_than_a_batch(self):
        with self.assertRaisesRegex(schema.DatasetError, "8 images.*one batch of 16"):
            _make(self.data_dir, batch_size=16)

    @parameterized.parameters("truncated", "bit_flip")
    def test_corrupt_shard_names_the_shard(self, damage):
        name = schema.shard_name("train", 1, 2)
        path = os.path.join(self.data_dir, name)
        with open(path, "rb") as f:
            data = f.read()
        if damage == "truncated":
            data = data[:-37]
        else:
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        with open(path, "wb") as f:
            f.write(data)
        dataset = _make(self.data_dir, batch_size=2)
        with self.assertRaisesRegex(schema.DatasetError,
                                    f"corrupt or unreadable TFRecord shard .*{name}: read"):
            with input_pipeline.dataset_errors():
                for _ in dataset:
                    pass

    def test_an_image_tensorflow_cannot_decode_names_its_shard_and_record(self):
        name = schema.shard_name("train", 1, 2)
        path = os.path.join(self.data_dir, name)
        records = [tf.train.Example.FromString(r.numpy())
                   for r in tf.data.TFRecordDataset(path)]
        image = records[2].features.feature[schema.IMAGE].bytes_list
        png = bytearray(tf.io.encode_png(np.zeros([4, 4, 3], np.uint8)).numpy())
        png[-13] ^= 0xFF  # the CRC of the IDAT chunk (IEND is the last 12 bytes)
        image.value[0] = bytes(png)
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record.SerializeToString())
        dataset = _make(self.data_dir, batch_size=2)
        with self.assertRaisesRegex(schema.DatasetError,
                                    f"cannot decode .*Invalid PNG data.*{name} record 2"):
            with input_pipeline.dataset_errors(self.data_dir, "train"):
                for _ in dataset:
                    pass

    def test_dataset_errors_passes_other_errors(self):
        with self.assertRaises(tf.errors.InvalidArgumentError):
            with input_pipeline.dataset_errors():
                tf.debugging.Assert(False, ["something else"])

    @parameterized.parameters(
        (dict(variant="pairs"), "unknown variant 'pairs'"),
        (dict(sentence_embedding="mean"), "unknown sentence embedding method 'mean'"),
        (dict(label_rule="largest"), "unknown label rule 'largest'"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(repeat=0), "repeat must be a positive integer"),
        (dict(seed=-1), "seed must be a non-negative integer"))
    def test_bad_arguments(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            _make(self.data_dir, **kwargs)


if __name__ == "__main__":
    tf.test.main()
