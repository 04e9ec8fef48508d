"""`describe`: the layer table, exact parameter count and forward FLOPs of one architecture."""
from __future__ import annotations

import json

from ..budget import count_flops, count_params
from .model_options import add_model_arguments, build_on_meta, comma_ints, input_dim_from_args, model_config_from_args

NAME = "describe"
HELP = "print an architecture's layers, exact trainable parameters and forward FLOPs per sample"
EXAMPLES = """  python -m tunekae describe --family kae --order 3 --latent 16 --input-dim 784
  python -m tunekae describe --family kae --order 3 --hidden 64 --latent 16 --input-dim 784 --json
  python -m tunekae describe --family kan --grid 5 --order 3 --input-dim 784
  python -m tunekae describe --family mlp --hidden 256,64 --variant vae --input-dim 784
"""


def add_arguments(p):
    add_model_arguments(p)
    p.add_argument("--hidden", type=comma_ints, default=(), help="encoder hidden widths, comma list (omit for none)")
    p.add_argument("--input-dim", type=int, help="input dimension (default 784 = 28x28)")
    p.add_argument("--dataset", help="take the input dimension from a dataset (digits: 64; list: `spaces --datasets`)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def layer_rows(model) -> list[dict]:
    rows = []
    for part in ("encoder", "decoder"):
        for i, module in enumerate(getattr(model, part)):
            n = count_params(module)
            rows.append({"part": part, "index": i, "layer": module.__class__.__name__,
                         "shape": getattr(module, "extra_repr", lambda: "")(), "params": n})
    return rows


def run(args) -> int:
    cfg = model_config_from_args(args, input_dim_from_args(args), tuple(args.hidden))
    model = build_on_meta(cfg)
    info = {"family": args.family, "layer": cfg.family, "variant": cfg.variant, "input_dim": cfg.input_dim,
            "hidden": list(cfg.hidden), "latent": cfg.latent_dim, "order": cfg.order, "grid": cfg.grid,
            "params": count_params(model), "flops": count_flops(model, cfg.input_dim),
            "layers": layer_rows(model)}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['family']} autoencoder ({cfg.variant}): {cfg.input_dim} -> "
          f"{' -> '.join(map(str, [*cfg.hidden, cfg.latent_dim, *reversed(cfg.hidden)]))} -> {cfg.input_dim}")
    print(f"{'part':8} {'#':>2}  {'layer':22} {'params':>12}  shape")
    for r in info["layers"]:
        print(f"{r['part']:8} {r['index']:>2}  {r['layer']:22} {r['params']:>12,}  {r['shape']}")
    print(f"params {info['params']:,}   forward FLOPs/sample {info['flops']:,}")
    return 0
