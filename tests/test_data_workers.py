"""Two worker processes on localhost under MultiWorkerMirroredStrategy read disjoint shares
of a folder and of TFRecord shards that together cover every example once per epoch."""

import json
import os

import fine_tune_support as support
import numpy as np
from PIL import Image
from test_data_records import write_records
from test_fine_tune_distributed import _free_ports, _result, _with_argv

WORKER = """
import json, sys
from bit_keras import data as bd, training
strategy = training.make_strategy("multi_worker")  # first: collectives start with the process
out = {}
for name, spec in (("tfrecords", sys.argv[1]), ("folder", sys.argv[2])):
    source = bd.load_source(spec)
    ds = strategy.distribute_datasets_from_function(lambda ctx: bd.train_dataset(
        source, ctx.get_per_replica_batch_size(6), resize=8, crop=8, seed=4, input_context=ctx))
    batches, levels = iter(ds), []
    for _ in range(source.num_examples // 6):  # one epoch of the global batches
        images, _ = next(batches)
        for local in strategy.experimental_local_results(images):
            levels += [int(round(float(v) * 255)) for v in local.numpy()[:, 0, 0, 0]]
    out[name] = levels
print(json.dumps(out))
"""


def test_two_workers_read_disjoint_shares_that_cover_every_example(tmp_path):
    pattern = write_records(tmp_path / "records")  # 4 files of 6 records, levels 1..24
    for k in range(24):
        os.makedirs(tmp_path / "folder" / f"c{k % 3}", exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), k + 1, np.uint8)).save(
            tmp_path / "folder" / f"c{k % 3}" / f"{k:02d}.png")
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    env = {"BIT_KERAS_HOME": str(tmp_path / "home")}
    workers = [support.python(
        _with_argv(WORKER, ["-", f"tfrecords:{pattern}", str(tmp_path / "folder")]),
        env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                             "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    shares = [_result(w) for w in workers]
    for name in ("tfrecords", "folder"):
        first, second = shares[0][name], shares[1][name]
        assert len(first) == len(second) == 12
        assert not set(first) & set(second), name
        assert sorted(first + second) == list(range(1, 25)), name
