"""Built-in comparisons: one module per comparison, each defining SPACE (tunekae.spaces.Space).
`python -m tunekae spaces` lists them; `--space path/to/file.py` loads your own."""
