"""The demo's report: the table in the terminal, ``results.json`` and ``fewshot.png``."""

import dataclasses
import os

from absl import logging

from bit_keras.utils import atomic


def report(results, config, seconds, how):
    """The demo's table as text, ``results.json`` and ``fewshot.png``; returns the report."""
    from bit_keras import fewshot
    table = {method: {name: {str(k): r.mean(k) for k in config.shots} for name, r in rows.items()}
             for method, rows in results.items()}
    text = ["", "Few-shot accuracy on the downstream classes (mean over seeds):", ""]
    for method, rows in results.items():
        text.append(f"{method}:")
        text.append(fewshot.format_table(rows))
        text.append("")
    wins = all(table[m]["pretrained"][k] > table[m]["scratch"][k] for m in table for k in table[m]["pretrained"])
    text.append(f"Pre-trained above scratch at every shot: {'yes' if wins else 'NO'}. "
                f"Features reloaded through {how}. {seconds / 60:.1f} minutes.")
    report = {"table": table, "pretrained_wins_everywhere": wins, "seconds": seconds,
              "config": {k: v for k, v in dataclasses.asdict(config).items()},
              "details": {m: {n: r.to_dict() for n, r in rows.items()} for m, rows in results.items()}}
    path = atomic.write_json(os.path.join(config.out, "results.json"), report)
    plot = _plot(table, config, results["linear_probe"]["pretrained"].num_classes)
    text.append(f"Wrote {path}" + (f" and {plot}" if plot else ""))
    report["text"] = "\n".join(text)
    return report


def _plot(table, config, num_classes):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"linear_probe": "-", "fine_tune": "--"}
    colours = {"pretrained": "tab:blue", "scratch": "tab:grey"}
    for method, rows in table.items():
        for name, accs in rows.items():
            shots = [int(k) for k in accs]
            ax.plot(shots, [100 * a for a in accs.values()], styles[method], marker="o",
                    color=colours[name], label=f"{name}, {method.replace('_', ' ')}")
    chance = 100 / num_classes
    ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=f"chance ({chance:.1f}%)")
    ax.set_xlabel("examples per class")
    ax.set_ylabel("downstream accuracy (%)")
    ax.set_xticks(list(config.shots))
    ax.set_title("BiT transfer: pre-trained vs from scratch")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(config.out, "fewshot.png")
    with atomic.atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
