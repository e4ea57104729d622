"""``tf.distribute`` strategies by name, and who this process is in a multi-worker run."""

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name="default", tpu=None):
    """A ``tf.distribute.Strategy`` from a name.

    Args:
        name: ``"default"`` (one device), ``"mirrored"`` (all local GPUs, or CPU),
            ``"multi_worker"`` (``MultiWorkerMirroredStrategy``; reads the standard
            ``TF_CONFIG`` environment variable) or ``"tpu"``.
        tpu: the TPU name or address for ``"tpu"`` (``None``: the local or Colab TPU).

    Returns:
        The strategy. Build models and optimizers inside ``strategy.scope()``.

    Example:

    >>> strategy = bit_keras.training.make_strategy("mirrored")
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy='multi_worker' needs the TF_CONFIG environment variable "
                             "(cluster and task of this worker); it is not set.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as e:
            raise ValueError(
                "strategy='tpu' found no TPU: run it on a TPU VM (or in Colab with a TPU), or "
                "name one: make_strategy('tpu', tpu=<name or grpc:// address>). Received: "
                f"tpu={tpu!r}; TensorFlow said: {e}") from e
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}")


def resolve_strategy(strategy):
    """A strategy object from a name, an existing strategy or None (the current one)."""
    if strategy is None:
        return tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    return make_strategy(strategy)


def is_default(strategy):
    return strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


def worker(strategy):
    """(task type, task index, is chief) of this process in ``strategy``'s cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    has_chief = bool(resolver is not None and resolver.cluster_spec().as_dict().get("chief"))
    chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and not has_chief)
    return task_type, task_id, chief
