"""``bit-keras data_service``: a tf.data service dispatcher or worker, for ``--data_service``.

On one machine, a dispatcher; on each machine with CPUs to spare, a worker; then give the
dispatcher's address to ``fine_tune`` or ``pretrain``:

    bit-keras data_service --role=dispatcher --port=5050
    bit-keras data_service --role=worker --dispatcher=host1:5050
    bit-keras fine_tune ... --data_service=host1:5050

Prints the server's address and runs until stopped (Ctrl-C or SIGTERM).
"""

from absl import flags

from bit_keras.cli import common

PROG = "data_service"


def define_flags(fv=flags.FLAGS):
    """The command's flags, defined on ``fv``."""
    from bit_keras.data import service
    flags.DEFINE_enum("role", None, service.ROLES, "Run a dispatcher or a worker.",
                      flag_values=fv)
    flags.DEFINE_integer("port", None, f"Port to listen on (default: {service.DEFAULT_PORT} for "
                         "a dispatcher, any free one for a worker).", lower_bound=0,
                         upper_bound=65535, flag_values=fv)
    flags.DEFINE_string("dispatcher", None, "A worker's dispatcher, host:port.", flag_values=fv)
    flags.DEFINE_string("work_dir", None, "A dispatcher's journal folder: a restarted "
                        "dispatcher resumes its jobs.", flag_values=fv)
    flags.DEFINE_string("worker_host", "localhost", "The host name by which the dispatcher "
                        "and the trainers reach this worker.", flag_values=fv)


def main(argv, fv=flags.FLAGS, prog=PROG):
    """Runs the server until the process is stopped, or prints one error line."""
    from bit_keras.data import service

    def serve():
        common.require(fv, "role")
        if fv.role == "worker":
            common.require(fv, "dispatcher")
        port = fv.port if fv.port is not None else (
            service.DEFAULT_PORT if fv.role == "dispatcher" else 0)
        service.serve(fv.role, port=port, dispatcher=fv.dispatcher, work_dir=fv.work_dir,
                      worker_host=fv.worker_host)

    status, _ = common.guarded(prog, argv, serve)
    return status
