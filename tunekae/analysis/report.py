"""`report`: run every analysis the results dir allows and write report.md linking them, with
the question, the protocol (all from run.json and the CSVs) and a two-sentence answer generated
from the compare table. Every number is formatted from the DataFrames the CSVs were written
from, with the same functions, so text and CSV agree."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from ..errors import UserError
from ..provenance import describe
from ..selection import Selection
from ..status import COLLAPSE_MARGIN
from . import axes, compare, generation, importance, metrics_table, objectives, pareto, recipe, recon, robustness, sweep, table
from .load import Results
from .settings import AXIS_NAMES, axis_columns, groups, trend_sentence
from .style import fmt_loss, fmt_p, fmt_params, fmt_pm, fmt_seconds, markdown_table, sort_families


def answer_sentences(cmp: pd.DataFrame | None, tab: pd.DataFrame, alpha: float = 0.05) -> str:
    if cmp is None or not len(cmp):
        clauses = []
        for budget, at in tab.groupby("budget", sort=True):
            at = at.sort_values("loss")
            vs = ", ".join(f"{r.family} {fmt_loss(r.loss)}" for r in at.iloc[1:].itertuples())
            clauses.append(f"at {fmt_params(budget)} parameters the best {at.iloc[0]['family']} reaches validation "
                           f"MSE {fmt_loss(at.iloc[0]['loss'])}" + (f" vs {vs}" if vs else ""))
        return ("Without confirmation runs there is only a provisional answer: " + "; ".join(clauses) + ". "
                "These are single validation runs with no test of the differences; run `python -m tunekae "
                "confirm` for test results over seeds.")
    clauses = []
    for setting, at in groups(cmp):
        win = at[at["is_best"]].iloc[0]
        vs = []
        for r in at[~at["is_best"]].itertuples():
            verdict = ("difference significant" if r.significant else "difference not significant") \
                if np.isfinite(r.p_value) else "no test"
            vs.append(f"{r.family} {fmt_pm(r.test_loss_mean, r.test_loss_std)} ({verdict}, p={fmt_p(r.p_value)})")
        clauses.append(f"{'at' if clauses else 'At'} {setting} the best {win['family']} reaches test MSE "
                       f"{fmt_pm(win['test_loss_mean'], win['test_loss_std'])}" + (" vs " + ", ".join(vs) if vs else ""))
    wins = cmp[cmp["is_best"]]["family"].value_counts()
    top = sort_families(wins[wins == wins.max()].index)
    who = f"{top[0]} is the best family" if len(top) == 1 else f"{' and '.join(top)} are each best"
    others = cmp[~cmp["is_best"]]
    where = "budgets" if cmp["setting"].nunique() == cmp["budget"].nunique() else "settings"
    return ("; ".join(clauses) + ". "
            f"{who} at {int(wins.max())} of {cmp['setting'].nunique()} {where}, and "
            f"{int(others['significant'].sum())} of {len(others)} differences to a {where[:-1]}'s best family are "
            f"significant (Welch t-test over seeds, p < {alpha:g}).")


def arm_summary(res: Results) -> pd.DataFrame:
    rows = []
    for arm, g in res.results.groupby("arm", sort=False):
        rows.append({"arm": arm, "family": g["family"].iloc[0], "budget": g["budget"].iloc[0], "trials": len(g),
                     "feasible": int((g["status"] != "infeasible").sum()), "full budget": int(g["full_budget"].sum()),
                     "stopped early": int(g["stopped_early"].sum()), "diverged": int((g["status"] == "diverged").sum()),
                     "collapsed": int((g["status"] == "collapsed").sum()),
                     "errors": int((g["status"] == "error").sum())})
    return pd.DataFrame(rows).sort_values(["budget", "family"])


def _collapsed_runs(runs: pd.DataFrame) -> str:
    """', N collapsed (...)': runs that ended within a few percent of the mean-image baseline."""
    collapsed = runs[runs.get("status") == "collapsed"] if "status" in runs else runs.iloc[:0]
    if collapsed.empty:
        return ""
    where = ", ".join(f"{arm} {n}" for arm, n in collapsed.groupby("arm").size().items())
    return (f", {len(collapsed)} collapsed (test MSE within {COLLAPSE_MARGIN:.0%} of the mean-image baseline, or above it: {where}; "
            f"kept in the means)")


def collapsed_sentence(cmp: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Which compared configurations learned no more than the mean image (their seeds collapsed):
    a loss that is a failure to learn, not a family's reach, must be named in the answer."""
    if "status" not in runs:
        return ""
    parts = []
    for r in cmp.itertuples():
        seeds = runs[(runs["arm"].astype(str) == str(r.arm)) & (runs["trial_id"].astype(str) == str(r.trial_id))]
        n = int((seeds["status"] == "collapsed").sum())
        if n:
            parts.append(f"{r.family} at {r.setting} ({n} of {len(seeds)} seeds)")
    if not parts:
        return ""
    return ("Collapsed to the mean image (test MSE within "
            f"{COLLAPSE_MARGIN:.0%} of predicting the mean training image): " + "; ".join(parts) + ".")


def protocol(res: Results) -> str:
    run = res.run
    splits = run.get("splits") or {}
    split_txt = ", ".join(f"{k} {int(v):,}" for k, v in splits.items()) or "not recorded in run.json"
    budgets = ", ".join(f"{b['label']} = {b['params']:,}" for b in res.budgets())
    asha = run.get("asha")
    asha_txt = (f"grace period {asha.get('grace_period')}, reduction factor {asha.get('reduction_factor')}, "
                f"max_t {asha.get('max_t')}" if isinstance(asha, dict) else "off (every trial runs every epoch)")
    latents = sorted(pd.to_numeric(res.results["latent_dim"], errors="coerce").dropna().astype(int).unique()) \
        if "latent_dim" in res.results else []
    latent_txt = (f"latent dims {', '.join(map(str, latents))}" if len(latents) > 1 else
                  f"latent dim {latents[0] if latents else run.get('latent_dim', '?')}")
    shape = (f"{run.get('input_dim', '?')} input(s), a regression" if res.regression else
             f"input dim {run.get('input_dim', '?')}, {latent_txt}")
    full = (run.get("splits") or {}).get("train")
    sizes = sorted(pd.to_numeric(res.results["train_size"], errors="coerce").dropna().astype(int).unique()) \
        if "train_size" in res.results else []
    if sizes and sizes != [full]:   # arms trained on subsets: say so beside the split sizes
        split_txt += (f"; the arms train on {', '.join(f'{n:,}' for n in sizes)} training images (nested seeded "
                      f"subsets of the training split)")
    selected = Selection.from_dict(run.get("selection")).describe()
    lines = [f"- **Dataset:** {run.get('dataset', '?')} ({shape}); splits: {split_txt}. Selection on validation "
             f"({selected}), test only in confirmation.",
             f"- **Budgets (trainable parameters):** {budgets}.",
             f"- **Arms:** {', '.join(sort_families(res.results['family']))} at every budget; "
             f"{run.get('samples_per_arm', '?')} trials per arm (Optuna TPE, one study per arm), "
             f"{run.get('epochs', '?')} epochs per trial.",
             f"- **ASHA:** {asha_txt}.",
             f"- **Seeds:** search seed {run.get('seed', '?')}."]
    runs = res.confirmed_runs
    if runs is not None:
        per_arm = runs.drop_duplicates(["arm", "trial_id"]).groupby("arm").size()
        lines[-1] += (f" Confirmation: top {int(per_arm.max())} configuration(s) per arm x "
                      f"{runs['seed'].nunique()} fresh seeds ({', '.join(map(str, sorted(runs['seed'].unique())))}), "
                      f"{len(runs)} runs, {int((runs.get('status') == 'ok').sum())} ok"
                      f"{_collapsed_runs(runs)}.")
    hw = run.get("hardware") or {}
    if hw:
        lines.append("- **Hardware:** " + ", ".join(f"{k} {v}" for k, v in hw.items() if v not in (None, "")) + ".")
    if run.get("versions"):
        lines.append("- **Versions:** " + describe(run.get("tunekae")) + ", "
                     + ", ".join(f"{k} {v}" for k, v in run["versions"].items())
                     + (f"; resumed with {describe(run['tunekae_resumed'])}" if run.get("tunekae_resumed") else "")
                     + ".")
    wall = run.get("wall_seconds")
    lines.append(f"- **Wall time:** search {fmt_seconds(wall)} s" if wall is not None else "- **Wall time:** not recorded")
    if runs is not None and "train_seconds" in runs:
        lines[-1] += f"; confirmation training {fmt_seconds(pd.to_numeric(runs['train_seconds']).sum())} s (sum over runs)"
    lines[-1] += "."
    if run.get("rerun_command"):
        lines.append(f"- **Command** (every setting that decides the trials spelt out; reruns this search): "
                     f"`{run['rerun_command']}`")
    elif run.get("command"):
        lines.append(f"- **Command:** `{run['command']}`")
    return "\n".join(lines) + "\n\n" + markdown_table(arm_summary(res).astype(str))


def previous_changes(res: Results, out, previous, select: str, alpha: float, why: str | None) -> dict:
    """The 'what changed' section against an earlier run of the study (analysis/previous.py)."""
    from .previous import changes
    if res.confirmed_runs is None:
        raise UserError("--previous compares confirmed results: run `python -m tunekae confirm` on this search first")
    changed = changes(res, previous, select, alpha, why)
    changed["table"].to_csv(out / "changes.csv", index=False)
    return changed


def _optional(name, fn, notes):
    try:
        return fn()
    except UserError as e:
        notes.append(f"{name} skipped: {e}")
    except Exception as e:  # an optional section must not sink the whole report
        print(f"tunekae.analysis report: warning: {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
        notes.append(f"{name} failed: {type(e).__name__}: {e}")
    return None


def run(res: Results, out, select: str = "val", alpha: float = 0.05, data_dir=None, previous=None,
        why: str | None = None) -> dict:
    """report.md and everything it shows; `previous`: an earlier run's dir to say what changed."""
    res.require_full()
    notes: list[str] = list(res.notes)
    par = pareto.run(res, out)
    tab = table.run(res, out, select)
    cmp = _optional("compare", lambda: compare.run(res, out, select, alpha), notes) \
        if res.confirmed_runs is not None else None
    if cmp is None and res.confirmed_runs is None:
        notes.append("compare skipped: no confirmed_runs.csv (run `python -m tunekae confirm DIR`)")
    mets = _optional("metrics", lambda: metrics_table.run(res, out, select, alpha), notes) \
        if res.confirmed_runs is not None else None
    two = _optional("objectives", lambda: objectives.run(res, out), notes)
    rec = _optional("recon", lambda: recon.run(res, out, data_dir=data_dir), notes)
    imp = _optional("importance", lambda: importance.run(res, out), notes)
    run_ = res.run
    title = f"{run_.get('space', res.path.name)} on {run_.get('dataset', '?')}"
    answer = answer_sentences(cmp["table"] if cmp else None, tab["table"], alpha)
    if cmp and (collapsed := collapsed_sentence(cmp["table"], res.confirmed_runs)):
        answer += " " + collapsed
    axes_varied = axis_columns(res.results)
    if cmp and axes_varied:   # a study along an axis answers first how the loss moves along it
        answer = trend_sentence(cmp["table"], res.results) + " " + answer
    best_at = ("which family fits the function best (test MSE of f(x))" if res.regression
               else "which autoencoder family reconstructs best")
    if two:   # a two-objective search answers with its trade-off first
        answer = objectives.answer_sentence(two["table"], res) + " " + answer
    own = mets is not None and "kl" in set(mets["table"]["metric"])   # the VAE family: its own metrics
    if own:
        answer += " " + metrics_table.answer_sentence(mets["table"])
        best_at += ", and which is best by the VAE family's own metrics (KL, active units, KS distance, the probes " \
                   "on the codes, generation)"
    if axes_varied:
        best_at += ", how does that change with the " + " and the ".join(AXIS_NAMES[a] for a in axes_varied)
    md = [f"# {title}\n", "## Question\n", f"{run_.get('description') or 'not recorded'} — at the same parameter "
          f"budget and the same tuning effort, {best_at}, and at what cost in time?\n",
          "## Answer\n", answer + "\n",
          "## Protocol\n", protocol(res), "## Results\n", tab["markdown"], "Numbers: [table.csv](table.csv).\n"]
    if cmp:
        md += [cmp["markdown"], "Numbers: [compare.csv](compare.csv).\n"]
    if mets:
        md += [mets["markdown"], "Numbers: [metrics.csv](metrics.csv).\n"]
    if two:
        md += two["markdown"]
    changed = previous_changes(res, out, previous, select, alpha, why) if previous else None
    if changed:
        md += [changed["markdown"], "Numbers: [changes.csv](changes.csv).\n"]
    if res.results["family"].nunique() == 1:   # a hyperparameter study: what the values do
        swp = _optional("marginals", lambda: sweep.run(res, out), notes)
        if swp:
            md += [swp["markdown"], "Numbers: [marginals.csv](marginals.csv).\n"]
    rcp = _optional("recipe", lambda: recipe.run(res, out), notes)
    if rcp:
        md += [rcp["markdown"], "Numbers: [recipe.csv](recipe.csv).\n"]
    hv = par["hypervolume"]
    hv_md = markdown_table(pd.DataFrame({"source": hv["source"], "family": hv["family"], "points": hv["n_points"],
                                         "on front": hv["n_front"], "hypervolume": hv["hypervolume"].map(fmt_loss),
                                         "normalised": hv["hypervolume_normalised"].map(fmt_loss)}))
    md += ["### Pareto fronts (loss, parameters, training time)\n",
           "Fronts use only trials that ran the full epoch budget; hollow markers are trials ASHA stopped early. "
           "Search points use validation loss, confirmed points test loss (never mixed in one front).\n",
           "![loss vs parameters](pareto_params.png)\n", "![loss vs training time](pareto_time.png)\n",
           "Hypervolume in (log10 parameters, loss) against one reference point per source "
           "(1.1 x the largest loss and parameter count among full-budget points); bigger is better.\n", hv_md,
           "Numbers: [pareto.csv](pareto.csv), [hypervolume.csv](hypervolume.csv).\n"]
    if res.pruned:
        pruned = _optional("pruned fronts", lambda: pareto.run(res, out, params="pruned"), notes)
        if pruned:
            md += ["### Pareto fronts of the pruned models\n",
                   "The same trials after pruning (pykan's node and edge thresholds): each point is the pruned "
                   "model's parameter count and its loss after pruning.\n",
                   "![pruned: loss vs parameters](pareto_pruned_params.png)\n",
                   "Numbers: [pareto_pruned.csv](pareto_pruned.csv), [hypervolume_pruned.csv](hypervolume_pruned.csv).\n"]
    rob = _optional("robustness", lambda: robustness.run(res, out, data_dir), notes) \
        if (res.path / "robustness.csv").is_file() else None
    if rob:
        md += ["### Robustness to corrupted inputs\n",
               ("Test MSE of f(x) as the inputs' corruption grows" if res.regression else
                "Reconstruction MSE against the clean test image as the corruption grows")
               + " (each confirmed configuration's saved model).\n"] + [f"![{f}]({f})\n" for f in rob["files"]]
    gen = _optional("generation", lambda: generation.run(res, out, select, data_dir), notes) \
        if generation.has_scores(res) else None
    if gen:
        md += gen["markdown"]
    ax = _optional("axes", lambda: axes.run(res, out), notes)
    if ax and ax["files"]:
        md += ["### Loss against latent size and training-set size\n",
               "Each point is an arm's best configuration (confirmed test loss when confirmed).\n"]
        md += [f"![{f}]({f})\n" for f in ax["files"] if f.endswith(".png")] + ["Numbers: [axes.csv](axes.csv).\n"]
    if rec:
        md += ["### Reconstructions and latent codes\n"] + [f"![{f}]({f})\n" for f in rec["files"]]
        md += [f"- {n}\n" for n in rec["notes"]]
    if imp:
        md += ["### Hyperparameter importance\n", "![importance](importance.png)\n",
               "Numbers: [importance.csv](importance.csv).\n"]
    if notes:
        md += ["## Notes\n"] + [f"- {n}\n" for n in notes]
    files = par["files"] + tab["files"] + (cmp["files"] if cmp else []) + (rcp["files"] if rcp else []) + \
        (["changes.csv"] if changed else []) + (ax["files"] if ax else []) + (rob["files"] if rob else []) + \
        (gen["files"] if gen else []) + (mets["files"] if mets else []) + (two["files"] if two else []) + (rec["files"] if rec else []) + \
        (imp["files"] if imp else [])
    (out / "report.md").write_text("\n".join(md))
    return {"files": ["report.md", *files], "notes": notes, "answer": answer}
