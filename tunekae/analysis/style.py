"""Shared look of figures and numbers: one colour per family everywhere, headless matplotlib,
and the number formats used by every markdown file (the report parses nothing itself: it formats
the same DataFrame values with these functions, so text and CSV agree)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")               # never needs a display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

FAMILY_ORDER = ["mlp", "kae", "kan", "cheby", "rbf", "vae", "beta_vae", "derp_vae", "wae_mmd"]
_PALETTE = plt.get_cmap("tab10").colors


def family_color(family: str, families: list[str] | None = None):
    ordered = list(FAMILY_ORDER) + sorted(set(families or []) - set(FAMILY_ORDER))
    if family not in ordered:
        ordered.append(family)
    return _PALETTE[ordered.index(family) % len(_PALETTE)]


def sort_families(families) -> list[str]:
    fams = list(dict.fromkeys(str(f) for f in families))
    return sorted(fams, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER), f))


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_loss(x) -> str:
    """Losses and other small metrics: 4 significant digits (0.01234, 1.234e-05)."""
    return f"{float(x):.4g}" if _finite(x) else "–"


fmt_metric = fmt_loss   # accuracies, PSNR, distances: the same 4 significant digits


def fmt_params(x) -> str:
    return f"{int(round(float(x))):,}" if _finite(x) else "–"


def fmt_seconds(x) -> str:
    return f"{float(x):.3g}" if _finite(x) else "–"


def fmt_p(x) -> str:
    return f"{float(x):.2g}" if _finite(x) else "n/a"


def fmt_std(x) -> str:
    """Spreads: 2 significant digits (a std is itself uncertain)."""
    return f"{float(x):.2g}" if _finite(x) else "–"


def fmt_pm(mean, std) -> str:
    """'0.02036 ± 0.00062': mean to 4, std to 2 significant digits."""
    if not _finite(mean):
        return "–"
    return f"{fmt_loss(mean)} ± {fmt_std(std)}" if _finite(std) else fmt_loss(mean)


def markdown_table(df, columns: dict[str, str] | None = None) -> str:
    """A DataFrame of strings -> a GitHub markdown table (no tabulate dependency)."""
    cols = list(columns) if columns else list(df.columns)
    heads = [columns[c] for c in cols] if columns else cols
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"
