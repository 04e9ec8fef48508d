"""`evaluate`: saved models against corrupted test inputs, scored on the clean images."""
from __future__ import annotations

import sys
from pathlib import Path

from ..cli_support import DATA_DIR_HELP, check_writable_file
from ..errors import UserError

NAME = "evaluate"
HELP = "score saved models on corrupted test inputs (MSE and PSNR against the clean input) at several levels"
EXAMPLES = """  python -m tunekae evaluate runs/mine                      # every model a confirm saved: runs/mine/robustness.csv
  python -m tunekae evaluate model.pt --noise gaussian:0.1,0.3,0.6 --noise salt_pepper:0.05,0.1
  python -m tunekae evaluate moons_model.pt --noise moons:0.2,0.3     # a moons test set drawn with more noise
"""


def add_arguments(p):
    p.add_argument("target", help="a search dir with confirm's models/, or a model file `train --save` wrote")
    p.add_argument("--noise", action="append", metavar="KIND:LEVELS",
                   help="gaussian:0.1,0.3,0.6 | salt_pepper:0.05,0.1 | moons:0.2,0.3 (repeatable; default "
                        "gaussian:0.1,0.3,0.6 and salt_pepper:0.05,0.1)")
    p.add_argument("--out", help="the CSV to write (default DIR/robustness.csv, or MODEL.robustness.csv)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)


def run(args) -> int:
    import pandas as pd

    from ..robustness import load_payload, parse_noise, sweep, sweep_dir
    noises = parse_noise(args.noise)
    target = Path(args.target)
    if target.is_dir():
        out = Path(args.out) if args.out else target / "robustness.csv"
        check_writable_file(out, "--out")
        table = sweep_dir(target, noises, args.data_dir)
    elif target.is_file():
        out = Path(args.out) if args.out else target.with_suffix(".robustness.csv")
        check_writable_file(out, "--out")
        model, payload = load_payload(target)
        dataset = (payload.get("metrics") or {}).get("dataset")
        if not dataset:
            raise UserError(f"{target} does not say which dataset it was trained on; evaluate a `train --save` file "
                            f"or a search dir")
        from ..data import load_dataset
        splits = load_dataset(dataset, data_dir=args.data_dir)
        table = pd.DataFrame([{"model": target.name, **r} for r in sweep(model, splits, noises, dataset=dataset)])
    else:
        raise UserError(f"{target} does not exist; give a search dir or a model file")
    table.to_csv(out, index=False)
    key = ["arm", "trial_id"] if "arm" in table else "model"
    wide = table.assign(noise=table["kind"] + ":" + table["level"].map(lambda v: f"{v:g}")).pivot_table(
        index=key, columns="noise", values="mse", sort=False)
    print(f"reconstruction MSE against the clean test inputs ({len(table)} rows):", file=sys.stderr)
    print(wide.to_string(float_format=lambda v: f"{v:.5f}"))
    print(f"wrote {out}", file=sys.stderr)
    return 0
