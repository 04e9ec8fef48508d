"""Analysis of a tunekae results dir: `python -m tunekae.analysis pareto|table|compare|recon|importance|report DIR`.

One concept per module: fronts (pure Pareto arithmetic), load (reading and validating a results
dir), style (colours, number formats), then one module per command. No Ray here; torch only
inside `recon`.
"""
