"""``bit-keras scan``: decode every image file of a folder up front, in parallel.

``bit_keras.data.from_folder`` decodes nothing when a source is made (a bad file is
skipped when a stream meets it); this is the up-front check:

    bit-keras scan --folder=imagenet/train --workers=16

Prints each unreadable file (``path<TAB>reason``) and then a JSON summary line
(``{"folder": ..., "files": N, "unreadable": K}``); exits 0 when it scanned, even with
unreadable files (``--strict`` makes those status 2).
"""

import json

from absl import flags

from bit_keras.cli import common

PROG = "scan"


def define_flags(fv=flags.FLAGS):
    """The command's flags, defined on ``fv``."""
    flags.DEFINE_string("folder", None, "A folder of class subfolders of images.",
                        flag_values=fv)
    flags.DEFINE_integer("workers", None, "Decoding threads (default 2 per CPU, at most 32).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_boolean("strict", False, "Exit with status 2 when a file is unreadable.",
                         flag_values=fv)


def main(argv, fv=flags.FLAGS, prog=PROG):
    """Scans ``--folder``: prints the unreadable files and a summary, or one error line."""
    from bit_keras import data

    def scan():
        common.require(fv, "folder")
        return data.scan(fv.folder, workers=fv.workers)

    status, report = common.guarded(prog, argv, scan)
    if status:
        return status
    for path, reason in sorted(report.unreadable.items()):
        print(f"{path}\t{reason}")
    print(json.dumps({"folder": report.folder, "files": report.num_files,
                      "unreadable": len(report.unreadable)}))
    return 2 if fv.strict and report.unreadable else 0
