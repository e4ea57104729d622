"""The tf.data service: decoding and augmentation on other machines than the training hosts.

``train_dataset(..., data_service=ADDRESS)`` sends the training stream to a tf.data service
(``tf.data.experimental.service``) whose dispatcher is at ``ADDRESS``. The stream is
registered as a sequence of *batches*, batch ``b`` made whole from the positions
``b * batch .. (b + 1) * batch`` exactly as without the service; the dispatcher hands
batch indices to the workers (dynamic sharding), so each batch is made by one worker,
once, and equals the local stream's batch ``b``. What the service gives up is the order:
batches reach the trainer as the workers finish them (a batch may come a few places
early or late). A resumed run starts again at its checkpointed step with the same batches.

``serve(role, ...)`` runs a dispatcher or a worker (``bit-keras data_service``).
"""

import socket
import time

import tensorflow as tf
from absl import logging

from bit_keras.utils import checks

DEFAULT_PORT = 5050
ROLES = ("dispatcher", "worker")


def check_address(address):
    """``"grpc://host:port"`` from ``"host:port"`` or ``"grpc://host:port"``; a ValueError
    naming the accepted form otherwise."""
    if not isinstance(address, str) or not address:
        raise ValueError("data_service must be the address of a tf.data service dispatcher, "
                         f"'host:port' or 'grpc://host:port'. Received: data_service={address!r}")
    rest = address[len("grpc://"):] if address.startswith("grpc://") else address
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise ValueError("data_service must be the address of a tf.data service dispatcher, "
                         f"'host:port' or 'grpc://host:port'. Received: data_service={address!r}")
    return f"grpc://{host}:{port}"


def check_reachable(address, timeout=5.0):
    """Raises a ConnectionError when nothing listens at the dispatcher's address."""
    host, port = address[len("grpc://"):].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"no tf.data service dispatcher answers at {address} ({e}). Start one with "
                    f"`bit-keras data_service --role=dispatcher --port={port}` and its workers "
                    f"with `bit-keras data_service --role=worker --dispatcher={host}:{port}`"
                ) from None
            time.sleep(0.5)


def check_source(source):
    """Raises a ValueError when ``source``'s pipeline cannot run on a service worker."""
    if source.streaming:
        raise ValueError(
            f"data_service needs a random-access source (a folder, a TFDS dataset read into "
            f"memory, arrays): the service makes each batch from its index. Received: "
            f"{source!r}, which is streamed from TFRecord files")
    if source.reads_in_python:
        raise ValueError(
            f"data_service workers run TensorFlow ops only, and {source!r} reads its images in "
            "Python (ArrayRecord records, or image files only Pillow decodes: TIFF, WebP, "
            "palette BMP). Convert the images to JPEG or PNG, or prepare the TFDS dataset as "
            "TFRecord")


def check_run(address, source):
    """A training run's check, before it writes anything: the address, the source and the
    dispatcher. Returns the address as ``"grpc://host:port"`` (None stays None)."""
    if address is None:
        return None
    address = check_address(address)
    check_source(source)
    check_reachable(address)
    return address


def distribute(batches, address):
    """``batches`` (a dataset whose source is a ``Dataset.range`` of batch indices) made
    by the service's workers, each index dealt to one of them."""
    return batches.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC, service=address))


def serve(role, port=DEFAULT_PORT, dispatcher=None, work_dir=None, worker_host="localhost"):
    """Runs a tf.data service dispatcher or worker until the process is stopped.

    Args:
        role: ``"dispatcher"`` or ``"worker"``.
        port: the port to listen on (0: any free one, for workers).
        dispatcher: a worker's dispatcher address (``"host:port"``).
        work_dir: a dispatcher's journal folder: a restarted dispatcher picks its jobs up
            again (fault tolerance); None keeps them in memory only.
        worker_host: the host name the dispatcher and trainers reach a worker by.

    Example:

    >>> bit_keras.data.service.serve("dispatcher", port=5050)  # on one machine
    >>> bit_keras.data.service.serve("worker", dispatcher="host1:5050")  # on each other one
    """
    service = tf.data.experimental.service
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}. Received: role={role!r}")
    checks.non_negative_int(port, "port", accepted="an int in [0, 65535]")
    if port > 65535:
        raise ValueError(f"port must be an int in [0, 65535]. Received: port={port!r}")
    if role == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(
            port=port, work_dir=work_dir, fault_tolerant_mode=work_dir is not None))
        print(f"tf.data service dispatcher at {server.target}", flush=True)
    else:
        target = check_address(dispatcher or "")
        check_reachable(target)
        server = service.WorkerServer(service.WorkerConfig(
            dispatcher_address=target[len("grpc://"):], port=port,
            worker_address=f"{worker_host}:%port%"))
        print(f"tf.data service worker of {target} at {server._address}", flush=True)
    logging.info("tf.data service %s running", role)
    server.join()
