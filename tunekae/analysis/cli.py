"""`python -m tunekae.analysis <command> DIR`: read a search output dir (and its confirmation
files when present) and write CSVs, markdown and PNG figures into DIR/analysis/ (or --out).
UserError anywhere becomes one line on stderr and exit status 2, as in `python -m tunekae`."""
from __future__ import annotations

import argparse

from ..cli_support import OneLineErrorParser, run_guarded
from ..errors import UserError

D = "results/kae_vs_mlp-digits-20261124-101500"
COMMANDS = {
    "pareto": ("non-dominated sets over (loss, params, train time), overall and per family; figures; hypervolumes",
               f"  python -m tunekae.analysis pareto {D}\n  python -m tunekae.analysis pareto {D} --loss val --out /tmp/a\n"
               f"  python -m tunekae.analysis pareto {D} --params pruned     # a space that prunes (kan_hparams)\n"
               f"  python -m tunekae.analysis pareto {D} --metric linear_acc # fronts over another metric (maximised)"),
    "table": ("each arm's best configuration as a markdown results table (+ CSV)",
              f"  python -m tunekae.analysis table {D}\n  python -m tunekae.analysis table {D} --select val\n"
              f"  python -m tunekae.analysis table {D} --metric kl"),
    "compare": ("per budget, the best configuration of each family; differences with 95% CI and Welch p-values",
                f"  python -m tunekae.analysis compare {D}\n  python -m tunekae.analysis compare {D} --alpha 0.01\n"
                f"  python -m tunekae.analysis compare {D} --metric knn_acc"),
    "recon": ("originals vs reconstructions of each family's best saved model (+ latent scatter for 2-D codes)",
              f"  python -m tunekae.analysis recon {D}\n  python -m tunekae.analysis recon {D} --n 10 --data-dir ~/data"),
    "importance": ("Optuna (fANOVA) hyperparameter importances per arm from the search's studies",
                   f"  python -m tunekae.analysis importance {D}\n  python -m tunekae.analysis importance {D} --full-only"),
    "axes": ("loss against latent size and training-set size per family (searches with --latents / --train-sizes)",
             f"  python -m tunekae.analysis axes {D}"),
    "robustness": ("reconstruction MSE vs corruption level per family, and noisy / denoised images (robustness.csv)",
                   f"  python -m tunekae.analysis robustness {D}"),
    "report": ("everything available, linked from report.md with the question, protocol and answer",
               f"  python -m tunekae.analysis report {D}\n  python -m tunekae.analysis report {D} --out analysis/kae_vs_mlp"),
}
OUTPUTS = {"pareto": "pareto.csv, hypervolume.csv, pareto_params.png, pareto_time.png (--params pruned: pareto_pruned*; "
                     "--metric NAME: pareto_NAME*, hypervolume_NAME.csv)",
           "table": "table.md, table.csv (--metric NAME: table_NAME.*)",
           "compare": "compare.md, compare.csv (needs confirmed_runs.csv; --metric NAME: compare_NAME.*)",
           "recon": "recon_<budget>.png (latent_<budget>.png for 2-D codes or point data)",
           "importance": "importance.csv, importance.png", "axes": "loss_vs_latent.png, loss_vs_train_size.png, axes.csv",
           "robustness": "robustness.png, denoised_gaussian.png (needs robustness.csv)",
           "report": "report.md and all of the above"}


METRIC_HELP = ("rank, compare and draw fronts on this recorded metric instead of the loss, named bare (knn_acc is "
               "val_knn_acc of the search and knn_acc of the confirmed runs): e.g. kl, active_units, ks_distance, "
               "linear_acc, knn_acc, class_sep, silhouette, label_agreement, psnr, recall_at_5, denoise_gauss_mse, "
               "gen_gmm_mmd, or any numeric column of results.csv / confirmed_runs.csv. Higher is better for "
               "accuracies, class_sep, silhouette, label_agreement, psnr, recall_at_5, active_units and generation "
               "entropy/confidence; lower for losses, errors, kl, ks_distance and MMDs; lower is assumed for a "
               "column the registry does not know. Outputs get the name: table_kl.md, compare_kl.md, pareto_kl.csv")
SELECT_HELP = ("how the best configuration of an arm is chosen among the confirmed ones: 'val' = the search's "
               "validation rank 1 (default: the test split only reports, never selects; with --metric, the best "
               "validation value of that metric where the search recorded it), 'test' = lowest test_loss_mean "
               "(with --metric, its best test mean)")


def build_parser() -> argparse.ArgumentParser:
    examples = "\n".join(ex.splitlines()[0] for _, ex in COMMANDS.values())
    parser = OneLineErrorParser(prog="python -m tunekae.analysis", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Analyse a tunekae search output dir (run.json, results.csv, studies.journal, and "
                                 "confirmed*.csv + models/ after `python -m tunekae confirm DIR`).\n"
                                 "Outputs go to DIR/analysis/ unless --out is given.",
                     epilog="examples:\n" + examples + "\n\nRun `python -m tunekae.analysis COMMAND --help` for "
                                                       "a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser, title="commands")
    for name, (help_, examples) in COMMANDS.items():
        p = sub.add_parser(name, help=help_.replace("%", "%%"), description=f"{help_}.\nWrites: {OUTPUTS[name]}.",
                           epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("dir", metavar="DIR", help="a search output dir (holds run.json and results.csv)")
        p.add_argument("--out", help="output dir (default DIR/analysis)")
        if name == "pareto":
            p.add_argument("--loss", choices=("auto", "val", "test"), default="auto",
                           help="auto: search trials on val_loss, plus confirmed configurations on test loss when "
                                "confirmed.csv exists; val or test: only that source")
            p.add_argument("--params", choices=("trained", "pruned"), default="trained",
                           help="pruned: each model's parameters and loss after pruning (spaces that prune, e.g. "
                                "kan_hparams); writes pareto_pruned.csv and *_pruned figures")
        if name in ("table", "compare", "report"):
            p.add_argument("--select", choices=("val", "test"), default="val", help=SELECT_HELP)
        if name in ("table", "compare", "pareto"):
            p.add_argument("--metric", metavar="NAME", help=METRIC_HELP.replace("%", "%%"))
        if name in ("compare", "report"):
            p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
        if name in ("recon", "report", "robustness"):
            p.add_argument("--data-dir", help="data root for torchvision datasets (default: the search's)")
        if name == "report":
            p.add_argument("--previous", metavar="OLD_DIR",
                           help="an earlier run of the same study (confirmed): say what changed since it")
            p.add_argument("--why", help="with --previous: what changed in the tool in between, one sentence")
        if name == "recon":
            p.add_argument("--n", type=int, default=8, help="test images per row (default 8)")
        if name == "importance":
            p.add_argument("--full-only", action="store_true",
                           help="only trials that ran the full epoch budget (default: every completed trial)")
    return parser


def dispatch(args) -> dict:
    from . import axes, compare, importance, pareto, recon, report, robustness, table
    from .load import load, output_dir
    from .metric_names import column, not_in, resolve
    res = load(args.dir)
    if args.command == "compare":
        res.require_confirmed_runs()         # fail before creating DIR/analysis
    metric = resolve(res, getattr(args, "metric", None))
    if args.command == "compare" and column(metric, res.confirmed_runs, "runs") is None:
        raise not_in(metric, res, "confirmed_runs.csv")    # compare tests the seeds' values
    if getattr(args, "previous", None):
        res.require_confirmed_runs()
        load(args.previous).require_confirmed_runs()
    if not 0 < getattr(args, "alpha", 0.05) < 1:
        raise UserError("--alpha must be between 0 and 1")
    if getattr(args, "n", 1) < 1:
        raise UserError("--n must be >= 1")
    out = output_dir(res, args.out)
    c = args.command
    if c == "pareto":
        done = pareto.run(res, out, args.loss, args.params, metric)
    elif c == "table":
        done = table.run(res, out, args.select, metric)
    elif c == "compare":
        done = compare.run(res, out, args.select, args.alpha, metric)
    elif c == "recon":
        done = recon.run(res, out, n=args.n, data_dir=args.data_dir)
    elif c == "importance":
        done = importance.run(res, out, args.full_only)
    elif c == "robustness":
        done = robustness.run(res, out, args.data_dir)
    elif c == "axes":
        done = axes.run(res, out)
        if not done["files"]:
            raise UserError(f"{args.dir} crossed no latent sizes or training-set sizes (search --latents 8 16 32 or "
                            f"--train-sizes 500 full); nothing to draw")
    else:
        return report.run(res, out, args.select, args.alpha, args.data_dir, args.previous, args.why)   # res.notes too
    return {**done, "notes": res.notes + done.get("notes", [])}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    done: dict = {}
    code = run_guarded(f"tunekae.analysis {args.command}", lambda: done.update(dispatch(args)))
    if code:
        return code
    out = args.out or f"{args.dir.rstrip('/')}/analysis"
    for note in done.get("notes", []):
        print(f"note: {note}")
    if "markdown" in done:                   # table and compare: the result itself
        print(done["markdown"])
    if "answer" in done:
        print(done["answer"])
    print(f"wrote {', '.join(done['files'])} to {out}")
    return 0
