# %% [markdown]
# # Audit, align, audit again, from Python
#
# This example runs medfair's pipeline step by step through the Python API on
# the pain-management vignettes that ship with medfair, then plots each held-out
# vignette's counterfactual gap before and after alignment. It runs as a
# script (`python examples/python/pipeline_loop.py OUT_DIR`) or cell by cell in
# a notebook (the `# %%` markers), and takes a few minutes on two CPU cores.

# %%
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # files only, so the example runs without a display
import matplotlib.pyplot as plt

import medfair
from medfair.audit import PROJECT_DATA

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "pipeline-example")
data = PROJECT_DATA / "vignettes" / "pain_management.jsonl"
task = medfair.load_task("generic", str(data))

# %% [markdown]
# ## 1. Split by vignette
# Training and judging use different vignettes, so a smaller gap afterwards is
# not the model remembering the audited cases.

# %%
train, test = medfair.split_vignettes([v.id for v in task.vignettes], 0.5, 0)
print("train:", train)
print("test: ", test)

# %% [markdown]
# ## 2. Audit the base model on the test vignettes

# %%
model = medfair.CausalLM.load()  # the packaged SmolLM2-135M-Instruct
before = medfair.audit(model=model, task=task, data=data, vignettes=test, out=out / "before",
                       bootstrap_replicates=200)
print("max gap before:", before.max_gap())

# %% [markdown]
# ## 3. Preference pairs on the training vignettes
# The teacher (here the target itself, shown the neutral vignette) writes a
# reference answer, and the target answers each attribute-injected prompt
# twice. With reference pairing, as `medfair pipeline` does by default, the
# reference is "chosen" and the target's answer farther from it in MiniLM's
# embedding space is "rejected".

# %%
prefs = medfair.build_preferences(target=model, teacher="self", task=task, data=data, vignettes=train,
                                  draws_per_vignette=4, max_new_tokens=64, pairing="reference",
                                  out=out / "prefs.jsonl")
print(f"{len(prefs.records)} pairs from {prefs.prompts} prompts; dropped: {prefs.dropped}")

# %% [markdown]
# ## 4. Train a LoRA adapter with SimPO

# %%
trained = medfair.align(prefs=out / "prefs.jsonl", out=out / "adapter", epochs=2, learning_rate=2e-4)
print(trained.log.tail())

# %% [markdown]
# ## 5. Audit again with the adapter, and compare
# Four training vignettes give only four optimiser steps, so expect small
# changes either way here; docs/RESULTS.md runs the same loop on Q-Pain.

# %%
after = medfair.audit(task=task, data=data, vignettes=test, adapter=out / "adapter", out=out / "after",
                      bootstrap_replicates=200)
print("max gap after:", after.max_gap())


def vignette_gaps(report):
    question = next(iter(report.summary["questions"]))
    gaps = report.summary["questions"][question]["levels"]["intersectional"]["vignette_gaps"]
    return {vignette: gap for vignette, gap in gaps.items() if isinstance(gap, (int, float))}


gaps_before, gaps_after = vignette_gaps(before), vignette_gaps(after)
change = medfair.stats.compare_vignette_gaps(gaps_before, gaps_after)
print(json.dumps({k: change[k] for k in ("n_vignettes", "mean_before", "mean_after")}, indent=2))

# %%
names = sorted(gaps_before)
figure, axes = plt.subplots(figsize=(6, 3.5))
for i, name in enumerate(names):
    axes.plot([0, 1], [gaps_before[name], gaps_after.get(name, float("nan"))], marker="o", color="0.4")
    axes.annotate(name, (1.02, gaps_after.get(name, 0.0)), fontsize=7, va="center")
axes.set_xticks([0, 1], ["before", "after"])
axes.set_xlim(-0.2, 1.6)
axes.set_ylabel("counterfactual gap in P(answer)")
axes.set_title("Per-vignette gap on held-out vignettes")
figure.tight_layout()
figure.savefig(out / "gaps.png", dpi=120)
print("plot:", out / "gaps.png")
